"""What one micro-batch (or one upsert of table values) changed, shared by every apply function.

The apply functions (``service/apply.py``, ``service/tables_in.py``) write into one ``BatchDelta``;
``service/derive.py`` then brings the derived state up to date from it in one pass (one encoder
call, one interest recompute, one k-hop propagation), and the engine turns the rest into its
``BatchResult``: table values to write, users to score, dead letters, metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from socrec_online.events import Query
from socrec_online.service.decode import DeadLetterReason
from socrec_online.types import UserId


@dataclass
class GraphChanges:
    """What one micro-batch changed in the graph (ids, not rows: the model has its own rows)."""

    item_ids: list[str] = field(default_factory=list)  # published or re-texted this batch
    item_rows: list[int] = field(default_factory=list)  # their engine rows (for the text vectors)
    engaged: dict[tuple[str, str], float] = field(default_factory=dict)  # (user, item) -> weight now
    follows: list[tuple[str, str, bool]] = field(default_factory=list)  # (src, dst, undo)

    def __bool__(self) -> bool:
        return bool(self.item_ids or self.engaged or self.follows)


@dataclass
class BatchResult:
    """What ``Engine.learn_many`` hands the worker."""

    applied: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, DeadLetterReason, str]] = field(default_factory=list)
    touched_users: list[UserId] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    table_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_event_ids: dict[UserId, str] = field(default_factory=dict)
    who_to_follow_users: list[UserId] = field(default_factory=list)


@dataclass
class BatchDelta:
    """The changes of one batch: raw state to write back and derived state to recompute.

    ``changes`` is None when no attached model learns from batches (nothing is collected for it).
    """

    latest: float  # the largest event time applied (the clock moves there)
    changes: GraphChanges | None = None
    # derived state to bring up to date (rows)
    item_text: dict[int, str] = field(default_factory=dict)  # item row -> its new text
    retexted: list[int] = field(default_factory=list)  # existing items whose text changed
    items_changed: set[int] = field(default_factory=set)  # item rows whose state changed
    profiles: dict[int, str] = field(default_factory=dict)  # user row -> new profile text
    comments: dict[int, int] = field(default_factory=dict)  # user row -> comments to encode (the tail)
    eng_changed: set[int] = field(default_factory=set)  # user rows whose engagements changed
    interest_dirty: set[int] = field(default_factory=set)
    follow_changed: set[int] = field(default_factory=set)
    # raw state to write back (keys), users to score, what to count
    act_keys: set[str] = field(default_factory=set)
    soc_keys: set[str] = field(default_factory=set)
    item_keys: set[str] = field(default_factory=set)
    touched: dict[str, str] = field(default_factory=dict)  # user -> the event that changed their list
    fanout_from: dict[int, str] = field(default_factory=dict)  # user rows whose followers see new proof
    clicks: list[tuple[str, str]] = field(default_factory=list)  # (user, item), for the online hit ratio
    fresh_items: list[float] = field(default_factory=list)  # publish times of new items
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)  # (topic, outcome) -> count
    result: BatchResult = field(default_factory=BatchResult)

    def count(self, topic: str, what: str) -> None:
        self.outcomes[(topic, what)] = self.outcomes.get((topic, what), 0) + 1

    def duplicate(self, topic: str) -> None:
        self.result.duplicates += 1
        self.count(topic, "duplicate")

    def reject(self, idx: int, topic: str, reason: DeadLetterReason, detail: str) -> None:
        self.result.rejected.append((idx, reason, detail))
        self.count(topic, "rejected")

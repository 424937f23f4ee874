"""The authoritative per-key state the worker keeps in its (Faust) tables.

One table per concern, keyed like the topic that writes it, so a key is only ever written by
the partition that owns it: ``social`` (follower user id, from ``follows``), ``items`` (item
id, from ``items``), ``activity`` (user id, from clicks/likes/comments/profiles/queries).
Values are plain JSON dicts and carry, per input partition, the last offset applied and the held
offsets below it (``replayed``: exact in constant space), which is what makes a replay after a crash
change nothing when the caller passes each event's position (the worker does, on a broker whose
offsets name one record for good); and the last event ids applied (``SOCREC_DEDUP_IDS_PER_KEY``),
which decide for events without a position. Everything else the engine holds
(embeddings, popularity, the ANN index) is derived from these and rebuilt by ``restore``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

MAX_UNFOLLOWED = 1000


Position = tuple[str, int, tuple[int, ...]]
"""Where an event was read: its input partition (``"clicks/3"``), its offset, and the offsets of the
same key's events on that partition that are still held, unapplied, below it (interactions waiting
for their item, ``streams.pipeline``)."""

MAX_HELD_OFFSETS = 256
"""Held offsets remembered per value and partition (more are forgotten oldest first: after a crash,
those records would count as applied)."""


def replayed(applied: Mapping[str, list[Any]], pos: Position | None) -> bool:
    """Was the event read at ``pos`` applied to this value already (read again after a crash)?

    Exact, in constant space per input partition: a value remembers the last offset applied from each
    partition, ``w``, and the held offsets below ``w`` not applied yet; an offset ``<= w`` and not
    held was applied. Records of one key reach the engine in offset order except held ones
    (``streams.delivery``), so nothing else lies below ``w`` unapplied."""
    if pos is None:
        return False
    rec = applied.get(pos[0])
    return rec is not None and pos[1] <= rec[0] and pos[1] not in rec[1]


def mark_applied(applied: dict[str, list[Any]], pos: Position | None) -> None:
    """Record that the event read at ``pos`` changed this value (its held offsets below come along)."""
    if pos is None:
        return
    tp, offset, held = pos
    rec = applied.get(tp)
    last, pending = (rec[0], [p for p in rec[1] if p != offset]) if rec is not None else (-1, [])
    if offset > last:
        last = offset
        pending = sorted(set(pending).union(h for h in held if h < offset))
    applied[tp] = [last, pending[-MAX_HELD_OFFSETS:]]


def release(applied: dict[str, list[Any]], pos: Position | None) -> bool:
    """The held event read at ``pos`` was refused (dead-lettered): no longer pending. True if it was."""
    if pos is None:
        return False
    rec = applied.get(pos[0])
    if rec is None or pos[1] not in rec[1]:
        return False
    rec[1] = [p for p in rec[1] if p != pos[1]]
    return True


def _applied(v: object) -> dict[str, list[Any]]:
    if not v:
        return {}
    if type(v) is not dict:
        raise TypeError(f"applied: expected an object, got {type(v).__name__}")
    out: dict[str, list[Any]] = {}
    for tp, rec in v.items():
        last, pending = rec
        out[_str(tp)] = [int(last), [int(p) for p in pending]]
    return out


ENTRY_BYTES = 64
"""Upper bound on what one entry adds to an encoded value besides its strings (brackets, commas,
floats): ``nbytes`` estimates stay upper bounds, so a value is only encoded to measure it near its bound."""


def json_bytes(text: str) -> int:
    """Encoded length of ``text`` as a JSON string (quotes and escapes included)."""
    return len(orjson.dumps(text))


def measure(state: SocialState | ActivityState) -> int:
    """The exact encoded size of ``state``'s table value; resets its running estimate to it."""
    state.nbytes = len(orjson.dumps(state.to_json()))
    return state.nbytes


def value_bound_problem(max_value_bytes: int, max_text_bytes: int, max_id_chars: int, ids: int, tags: int) -> str | None:
    """Why values of these limits may not fit ``max_value_bytes`` whatever arrives, or None.

    An item value (text, tags, applied ids) and the parts of an activity value that are never
    trimmed (profile text, applied ids) are bounded by the decoder's limits alone: worst case
    ``6 * max_text_bytes + (tags + ids) * (6 * max_id_chars + 3)`` bytes (JSON escapes a control
    character as six). Growing parts (follows, engagements, comments) are checked as they grow.
    """
    worst = 6 * max_text_bytes + (tags + ids) * (6 * max_id_chars + 3) + 4 * ENTRY_BYTES
    if worst <= max_value_bytes:
        return None
    return (
        f"max_table_value_bytes ({max_value_bytes}) is below the worst case the decoder's limits allow "
        f"({worst} bytes from max_text_bytes, max_id_chars, max_tags, dedup_ids_per_key): raise it or lower those"
    )


class RecentIds:
    """Bounded set of applied event ids, oldest evicted first."""

    __slots__ = ("_order", "_set", "limit")

    def __init__(self, limit: int, ids: Iterable[str] = ()) -> None:
        self.limit = limit
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        for i in ids:
            self.add(i)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._set

    def add(self, event_id: str) -> None:
        if event_id in self._set:
            return
        self._order.append(event_id)
        self._set.add(event_id)
        while len(self._order) > self.limit:
            self._set.discard(self._order.popleft())

    def to_list(self) -> list[str]:
        return list(self._order)


@dataclass
class ItemState:
    text: str
    ts: float
    author: str | None
    tags: list[str]
    ids: RecentIds
    applied: dict[str, list[Any]] = field(default_factory=dict)  # see ``replayed``

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "ts": self.ts,
            "author": self.author,
            "tags": self.tags,
            "ids": self.ids.to_list(),
            "applied": self.applied,
        }

    @staticmethod
    def from_json(v: dict[str, Any], id_limit: int) -> ItemState:
        return ItemState(
            _str(v["text"]),
            float(v["ts"]),
            _opt_str(v.get("author")),
            [_str(t) for t in v.get("tags") or ()],
            RecentIds(id_limit, map(_str, v.get("ids") or ())),
            _applied(v.get("applied")),
        )


@dataclass
class SocialState:
    following: dict[str, float]  # target -> since ts (insertion-ordered)
    unfollowed: dict[str, float]  # block list: never suggested back, bounded
    ids: RecentIds
    last_ts: float = 0.0
    nbytes: int = -1  # upper bound of the encoded value (-1: not measured yet)
    applied: dict[str, list[Any]] = field(default_factory=dict)  # see ``replayed``

    def full(self, target: str, limit: int) -> bool:
        """Following ``target`` would pass ``limit`` follows (the value's size bound)."""
        return target not in self.following and len(self.following) >= limit

    def fits(self, cost: int, max_bytes: int) -> bool:
        """Adding ``cost`` bytes keeps the encoded value within ``max_bytes`` (measured exactly only
        when the running estimate says it might not)."""
        if self.nbytes < 0 or self.nbytes + cost > max_bytes:
            measure(self)
        return self.nbytes + cost <= max_bytes

    def grow(self, cost: int) -> None:
        """The value grew by at most ``cost`` encoded bytes (measured first if it never was)."""
        if self.nbytes < 0:
            measure(self)
        self.nbytes += cost

    def to_json(self) -> dict[str, Any]:
        return {
            "following": [[k, v] for k, v in self.following.items()],
            "unfollowed": [[k, v] for k, v in self.unfollowed.items()],
            "ids": self.ids.to_list(),
            "last_ts": self.last_ts,
            "applied": self.applied,
        }

    @staticmethod
    def from_json(v: dict[str, Any], id_limit: int) -> SocialState:
        return SocialState(
            {str(k): float(t) for k, t in v.get("following") or ()},
            {str(k): float(t) for k, t in v.get("unfollowed") or ()},
            RecentIds(id_limit, map(_str, v.get("ids") or ())),
            float(v.get("last_ts") or 0.0),
            applied=_applied(v.get("applied")),
        )


@dataclass
class ActivityState:
    """What one user did: recent engagements (unique items, most recent last), seen items, texts."""

    ids: RecentIds
    # Entries are tuples: immutable, so a table value may share them, and the GC need not track them.
    recent: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # item -> (weight, ts, kinds)
    seen: dict[str, None] = field(default_factory=dict)
    comments: list[tuple[str, str, float, float]] = field(default_factory=list)  # (item, text, ts, sentiment)
    profile: str | None = None
    profile_ts: float = 0.0
    last_ts: float = 0.0
    nbytes: int = -1  # upper bound of the encoded value (-1: not measured yet)
    applied: dict[str, list[Any]] = field(default_factory=dict)  # see ``replayed``

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "recent": dict(self.recent),  # insertion order = recency, kept by JSON objects
            "seen": list(self.seen),
            "comments": list(self.comments),
            "profile": self.profile,
            "profile_ts": self.profile_ts,
            "last_ts": self.last_ts,
            "ids": self.ids.to_list(),
        }

    @staticmethod
    def from_json(v: dict[str, Any], id_limit: int) -> ActivityState:
        return ActivityState(
            ids=RecentIds(id_limit, map(_str, v.get("ids") or ())),
            recent={
                str(k): (float(e[0]), float(e[1]), int(e[2])) for k, e in (v.get("recent") or {}).items()
            },
            seen={str(i): None for i in v.get("seen") or ()},
            comments=[(str(c[0]), str(c[1]), float(c[2]), float(c[3])) for c in v.get("comments") or ()],
            profile=_opt_str(v.get("profile")),
            profile_ts=float(v.get("profile_ts") or 0.0),
            last_ts=float(v.get("last_ts") or 0.0),
            applied=_applied(v.get("applied")),
        )

    def grow(self, cost: int) -> None:
        """The value grew by at most ``cost`` encoded bytes (measured first if it never was)."""
        if self.nbytes < 0:
            measure(self)
        self.nbytes += cost

    def trim_to(self, max_bytes: int) -> int:
        """Keep the encoded value within ``max_bytes``: forget the oldest seen items that are not
        recent engagements, then the oldest comments, then the oldest engagements. Returns the
        entries dropped (0 when the running estimate is within the bound: nothing is encoded)."""
        if 0 <= self.nbytes <= max_bytes:
            return 0
        dropped = 0
        while measure(self) > max_bytes:
            old_seen = [i for i in self.seen if i not in self.recent]
            if old_seen:
                for i in old_seen[: max(1, len(old_seen) // 8)]:
                    del self.seen[i]
                    dropped += 1
            elif self.comments:
                del self.comments[0]
                dropped += 1
            elif self.recent:
                item = next(iter(self.recent))
                del self.recent[item]
                self.seen.pop(item, None)
                dropped += 1
            else:
                break  # only the fixed parts are left: bounded by the settings (value_bound_problem)
        return dropped

    def engage(self, item: str, delta: float, ts: float, kind: int, limit: int, seen_limit: int) -> None:
        """Add ``delta`` to the item's entry and make it the most recent; evict the oldest beyond ``limit``."""
        e = self.recent.pop(item, None)
        if e is None:
            self.recent[item] = (delta, ts, int(kind))
        else:
            self.recent[item] = (e[0] + delta, max(e[1], ts), int(e[2] | kind))
        while len(self.recent) > limit:
            del self.recent[next(iter(self.recent))]
        self.seen.pop(item, None)
        self.seen[item] = None
        while len(self.seen) > seen_limit:
            del self.seen[next(iter(self.seen))]


def _str(v: object) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _opt_str(v: object) -> str | None:
    return None if v is None else _str(v)


S = TypeVar("S", ItemState, SocialState, ActivityState)

MALFORMED = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)
"""What ``from_json`` raises on a value this code did not write (another version, a corrupt record)."""


def load_values(
    values: Mapping[Any, Any] | None, parse: Callable[[dict[str, Any], int], S], id_limit: int
) -> tuple[dict[str, S], list[str]]:
    """One table's values as state objects, and a description of each value left out.

    A value that does not parse is left out rather than raised: the tables are the worker's own
    changelog, read again at every start, so one bad record would otherwise stop the worker at
    every restart. ``None`` values (deletions) are skipped silently.
    """
    out: dict[str, S] = {}
    bad: list[str] = []
    for key, v in (values or {}).items():
        if v is None:
            continue
        try:
            if type(key) is not str or type(v) is not dict:
                raise TypeError(f"expected a string key and an object, got {type(v).__name__}")
            out[key] = parse(v, id_limit)
        except MALFORMED as exc:
            bad.append(f"{str(key)[:80]!r}: {exc!r}"[:300])
    return out, bad


@dataclass
class LoadedTables:
    """The three tables' values as state objects, and per table what was left out (``load_values``)."""

    items: dict[str, ItemState]
    social: dict[str, SocialState]
    activity: dict[str, ActivityState]
    malformed: dict[str, list[str]]


def load_tables(tables: Mapping[str, Mapping[Any, Any] | None], id_limit: int) -> LoadedTables:
    """``load_values`` of the items, social and activity tables (a full restore or another worker's)."""
    items, bad_items = load_values(tables.get("items"), ItemState.from_json, id_limit)
    social, bad_social = load_values(tables.get("social"), SocialState.from_json, id_limit)
    activity, bad_activity = load_values(tables.get("activity"), ActivityState.from_json, id_limit)
    return LoadedTables(items, social, activity, {"items": bad_items, "social": bad_social, "activity": bad_activity})

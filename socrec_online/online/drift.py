"""When to fine-tune: every N events, every T seconds, or early when online quality drifts.

The quality signal is prequential (test-then-train): each click is first scored against what
was recently recommended to that user (hit = the clicked item was in one of their last lists),
then learned from. ADWIN (river) watches that 0/1 stream and fires when its mean changes
significantly, i.e. when what users want moved away from what the model serves.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from river.drift import ADWIN


class PrequentialMonitor:
    """Hit signal over clicks against recent recommendations, with a river ADWIN drift detector."""

    def __init__(
        self, delta: float = 0.002, lists_per_user: int = 3, max_users: int = 100_000, window: int = 2000
    ) -> None:
        self.delta = delta
        self.detector = ADWIN(delta=delta)
        self.lists_per_user = lists_per_user
        self.max_users = max_users
        self._recs: OrderedDict[str, deque[frozenset[str]]] = OrderedDict()
        self._window: deque[bool] = deque(maxlen=window)
        self.hits = 0
        self.clicks = 0
        self.drifts = 0
        self.drift_pending = False

    def observe_recommendation(self, user_id: str, item_ids: Iterable[str]) -> None:
        lists = self._recs.get(user_id)
        if lists is None:
            lists = self._recs[user_id] = deque(maxlen=self.lists_per_user)
        lists.append(frozenset(item_ids))
        self._recs.move_to_end(user_id)
        while len(self._recs) > self.max_users:
            self._recs.popitem(last=False)

    def observe_click(self, user_id: str, item_id: str) -> bool | None:
        """The click's hit (None when the user had no recommendation yet: no signal)."""
        lists = self._recs.get(user_id)
        if not lists:
            return None
        hit = any(item_id in s for s in lists)
        self.clicks += 1
        self.hits += int(hit)
        self._window.append(hit)
        self.detector.update(1.0 if hit else 0.0)
        if self.detector.drift_detected:
            self.drifts += 1
            self.drift_pending = True
        return hit

    def take_drift(self) -> bool:
        """True once per detected drift (the trigger consumes it)."""
        d, self.drift_pending = self.drift_pending, False
        return d

    @property
    def hit_ratio(self) -> float:
        """Share of recent clicks that hit a recent recommendation (socrec_online_hit_ratio)."""
        return sum(self._window) / len(self._window) if self._window else 0.0


@dataclass
class TriggerPolicy:
    """Fine-tune after ``every_events`` new events, or ``every_s`` seconds with at least
    ``min_events`` new ones, or on drift with at least ``min_events`` new ones."""

    every_events: int = 5000
    every_s: float = 600.0
    min_events: int = 200

    def __post_init__(self) -> None:
        self.since_events = 0
        self.last_run = time.monotonic()
        self.drift = False

    def note(self, n_events: int) -> None:
        self.since_events += n_events

    def note_drift(self) -> None:
        self.drift = True

    def due(self, now: float | None = None) -> str | None:
        """The reason to fine-tune now (``events``, ``drift``, ``time``) or None."""
        now = time.monotonic() if now is None else now
        if self.since_events >= self.every_events:
            return "events"
        if self.since_events < self.min_events:
            return None
        if self.drift:
            return "drift"
        if now - self.last_run >= self.every_s:
            return "time"
        return None

    def reset(self, now: float | None = None) -> None:
        self.since_events = 0
        self.drift = False
        self.last_run = time.monotonic() if now is None else now

"""What each user was last shown, and the online hit ratio it gives.

The hit ratio is the share of the last ``window`` clicks whose item was in the clicker's last
published list::

    hit_ratio = #{clicks c in window : item(c) in shown(user(c))} / #window

Published lists are remembered for at most ``max_users`` users, those first shown a list
forgotten first, so the memory is bounded whatever the number of users. A read over the API
(``Engine.recommend_now``) is no publication: the caller puts the list it replaced back.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

MAX_LAST_RECS = 200_000
"""Users whose last published list is remembered (for the online hit ratio)."""

HIT_WINDOW = 2000
"""Clicks the online hit ratio is taken over (the latest ones)."""


class ShownLists:
    """The item ids last published to each user (bounded) and a window of click hits and misses."""

    def __init__(self, max_users: int = MAX_LAST_RECS, window: int = HIT_WINDOW) -> None:
        self.max_users = max_users
        self._lists: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._hits: deque[bool] = deque(maxlen=window)

    def published(self, user_id: str, item_ids: Iterable[str]) -> None:
        """``user_id`` was shown ``item_ids`` (replaces the previous list; past ``max_users`` users, the first shown are forgotten)."""
        self._lists[user_id] = frozenset(item_ids)
        while len(self._lists) > self.max_users:
            self._lists.popitem(last=False)

    def last(self, user_id: str) -> frozenset[str] | None:
        return self._lists.get(user_id)

    def put_back(self, user_id: str, shown: frozenset[str] | None) -> None:
        """Undo a publication: ``shown`` (a ``last`` taken before) is the user's list again, None none."""
        if shown is None:
            self._lists.pop(user_id, None)
        else:
            self._lists[user_id] = shown

    def clicked(self, user_id: str, item_id: str) -> None:
        """Count a click as a hit or a miss of the user's list; a user never shown a list counts neither."""
        shown = self._lists.get(user_id)
        if shown is not None:
            self._hits.append(item_id in shown)

    def forget(self, user_ids: Iterable[str]) -> None:
        """Drop these users' lists (evicted users)."""
        for uid in user_ids:
            self._lists.pop(uid, None)

    def hit_ratio(self) -> float | None:
        """The share of the window's clicks that hit, None before the first counted click."""
        return sum(self._hits) / len(self._hits) if self._hits else None

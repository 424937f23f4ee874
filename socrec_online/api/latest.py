"""The lists a worker last published, per user and kind, bounded in users (``SOCREC_API_CACHE_USERS``).

Kept as the bytes that went to the ``recommendations`` topic, so publishing costs a dict update
and only a read parses them. A list the API computed for a user with none published is kept too
(source "computed"), until the next published one replaces it: a second read of that user costs
no engine call, which the pipeline's batches would wait behind. Query answers are not kept: they
answer one request, not a user's list.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

KEPT_KINDS = frozenset({"items", "users"})


class Published(Protocol):
    """A published ``recommendations`` payload (``socrec_online.service.remote.Encoded``)."""

    @property
    def user_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def data(self) -> bytes: ...


class LatestLists:
    """Per user, the last published payload of each kind; the least recently published user goes first."""

    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        self._lists: OrderedDict[str, dict[str, tuple[str, bytes]]] = OrderedDict()  # kind -> (source, data)

    def __len__(self) -> int:
        return len(self._lists)

    def put(self, payloads: Iterable[Published]) -> None:
        """Lists the worker published (each replaces what was kept for its user and kind)."""
        for p in payloads:
            self.keep(p.user_id, p.kind, p.data, "published")

    def keep(self, user_id: str, kind: str, data: bytes, source: str) -> None:
        if self.max_users <= 0 or kind not in KEPT_KINDS:
            return
        lists = self._lists
        kinds = lists.get(user_id)
        if kinds is None:
            kinds = lists[user_id] = {}
        else:
            lists.move_to_end(user_id)
        kinds[kind] = (source, data)
        while len(lists) > self.max_users:
            lists.popitem(last=False)

    def get(self, user_id: str, kind: str) -> tuple[str, bytes] | None:
        """(source, payload bytes) kept for this user and kind: "published" or "computed"."""
        kinds = self._lists.get(user_id)
        return None if kinds is None else kinds.get(kind)

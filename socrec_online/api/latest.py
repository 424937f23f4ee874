"""The lists a worker last published, per user and kind, bounded in users (``SOCREC_API_CACHE_USERS``).

Kept as the bytes that went to the ``recommendations`` topic, so publishing costs a dict update
and only a read parses them. Query answers are not kept: they answer one request, not a user's list.
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
        self._lists: OrderedDict[str, dict[str, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lists)

    def put(self, payloads: Iterable[Published]) -> None:
        if self.max_users <= 0:
            return
        lists = self._lists
        for p in payloads:
            if p.kind not in KEPT_KINDS:
                continue
            kinds = lists.get(p.user_id)
            if kinds is None:
                kinds = lists[p.user_id] = {}
            else:
                lists.move_to_end(p.user_id)
            kinds[p.kind] = p.data
        while len(lists) > self.max_users:
            lists.popitem(last=False)

    def get(self, user_id: str, kind: str) -> bytes | None:
        kinds = self._lists.get(user_id)
        return None if kinds is None else kinds.get(kind)

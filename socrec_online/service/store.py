"""The engine's storage: raw state (the table values) and the row-aligned arrays derived from it.

Users and items get dense rows (``IdMap``) the first time they are seen; a row never changes
meaning while the store lives, so every per-row array and tensor only grows. Evicted keys leave
inert rows behind (``dead_users``, ``dead_items``) until a compaction moves the live state into a
fresh store (``service/retention.py``). Raw state is ``item_state``, ``social`` and
``activity`` (``service/state.py``); everything else here is derived from it and rebuilt by a
restore. The follow graph is kept as a reverse index (``followers``) and, for the vectorised
k-hop and social-proof gathers, as CSR built on demand and dropped on any follow change.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from socrec_online import metrics
from socrec_online.idmap import IdMap
from socrec_online.service.arrays import gather, grow, grow_t
from socrec_online.service.state import ActivityState, ItemState, RecentIds, SocialState
from socrec_online.settings import Settings
from socrec_online.types import ItemId, UserId

MAX_CLOCK_SKEW_S = 3600.0
"""The event-time clock never runs further than this past wall time (see ``Store.advance_clock``)."""

Csr = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def tiebreak(id_: str) -> float:
    """A stable number in [0, 1) from an id: equal scores rank by id, not by row order."""
    return zlib.crc32(id_.encode("utf-8", "surrogatepass")) / 4294967296.0


def _cached_rows(cache: dict[int, np.ndarray], row: int, ids: Iterable[str], idmap: IdMap) -> np.ndarray:
    """Rows of ``ids`` known to ``idmap`` (in order), memoised per user row until invalidated."""
    a = cache.get(row)
    if a is None:
        rows = [r for r in map(idmap.get, ids) if r is not None]
        a = cache[row] = np.asarray(rows, np.int64)
    return a


class Store:
    """All state of one engine; not thread-safe (one engine per worker, one thread at a time)."""

    def __init__(self, settings: Settings, dim: int, device: torch.device) -> None:
        self.settings, self.dim, self.device = settings, dim, device
        d, dev, r = dim, device, settings.recent_per_user
        self.items = IdMap()
        self.users = IdMap()
        self.item_state: dict[ItemId, ItemState] = {}
        self.social: dict[UserId, SocialState] = {}
        self.activity: dict[UserId, ActivityState] = {}
        self.followers: dict[int, set[int]] = {}  # followee row -> follower rows
        self.n_edges = 0
        self.clock = 0.0
        self.next_sweep = 0.0  # event time of the next retention sweep (service/retention.py)
        self.dead_users: set[UserId] = set()  # evicted, named by nothing live: rows to reclaim
        self.dead_items: set[ItemId] = set()
        # item id not in the catalogue (not yet, or evicted) -> user rows whose engagement arrays left it
        # out (service/derive.py); bounded like the rows: a compaction builds it again from live values
        self.engaged_unknown: dict[ItemId, set[int]] = {}
        self._fol_rows: dict[int, np.ndarray] = {}
        self._seen_rows: dict[int, np.ndarray] = {}
        self._unfollowed_rows: dict[int, np.ndarray] = {}
        self._csr: Csr | None = None
        # items (row-aligned)
        self.item_emb = torch.zeros(0, d, device=dev)  # (I, D)
        self.item_ts = np.zeros(0, np.float64)  # (I,) -inf = not published
        self.item_author = np.zeros(0, np.int64)  # (I,) user row or -1
        self.item_tb = np.zeros(0, np.float32)  # (I,) tie-break in [0, 1) from the id
        # users (row-aligned)
        self.eng_item = np.zeros((0, r), np.int64)  # (U, R) item rows, -1 pad
        self.eng_w = np.zeros((0, r), np.float32)  # (U, R)
        self.eng_ts = np.zeros((0, r), np.float64)  # (U, R)
        self.eng_kind = np.zeros((0, r), np.int8)  # (U, R) engagement.Kind bitmask
        self.interest = torch.zeros(0, d, device=dev)  # (U, D)
        self.hops = torch.zeros(settings.gnn_layers, 0, d, device=dev)  # (K, U, D)
        self.social_vec = torch.zeros(0, d, device=dev)  # (U, D)
        self.has_interest = np.zeros(0, bool)  # (U,)
        self.profile_emb = torch.zeros(0, d, device=dev)  # (U, D)
        self.has_profile = np.zeros(0, bool)  # (U,)
        self.user_last_ts = np.zeros(0, np.float64)  # (U,) latest event time (the interest anchor)
        self.user_tb = np.zeros(0, np.float64)  # (U,) tie-break in [0, 1) from the id
        self.comment_emb: dict[int, Tensor] = {}  # user row -> (n, D), aligned with activity.comments

    # ------------------------------------------------------------------ rows
    def user_row(self, uid: str) -> int:
        """The user's row, added (with grown arrays) on first sight."""
        if self.dead_users:
            self.dead_users.discard(uid)  # back before a compaction: the inert row serves again
        row = self.users.add(uid)
        if row >= self.eng_item.shape[0]:
            n = row + 1
            self.eng_item = grow(self.eng_item, n, -1)
            self.eng_w = grow(self.eng_w, n, 0.0)
            self.eng_ts = grow(self.eng_ts, n, 0.0)
            self.eng_kind = grow(self.eng_kind, n, 0)
            self.has_interest = grow(self.has_interest, n, False)
            self.has_profile = grow(self.has_profile, n, False)
            self.user_last_ts = grow(self.user_last_ts, n, 0.0)
            self.user_tb = grow(self.user_tb, n, 0.0)
        if row >= self.interest.shape[0]:
            self.interest = grow_t(self.interest, row + 1)
            self.social_vec = grow_t(self.social_vec, row + 1)
            self.profile_emb = grow_t(self.profile_emb, row + 1)
            self.hops = grow_t(self.hops, row + 1, dim0=1)
        if row == len(self.users) - 1:  # (re)set for the newest row; rows never change meaning
            self.user_tb[row] = tiebreak(uid)
        return row

    def item_row(self, iid: str) -> int:
        """The item's row, added (with grown arrays) on first sight."""
        if self.dead_items:
            self.dead_items.discard(iid)
        row = self.items.add(iid)
        if row >= self.item_ts.shape[0]:
            self.item_ts = grow(self.item_ts, row + 1, -np.inf)
            self.item_author = grow(self.item_author, row + 1, -1)
            self.item_tb = grow(self.item_tb, row + 1, 0.0)
        self.item_tb[row] = tiebreak(iid)
        if row >= self.item_emb.shape[0]:
            self.item_emb = grow_t(self.item_emb, row + 1)
        return row

    def rows_of(self, user_ids: Sequence[UserId]) -> np.ndarray:
        """User rows, -1 for users never seen (or evicted)."""
        get = self.users.get
        if self.dead_users:
            dead = self.dead_users
            return np.fromiter((-1 if u in dead else get(u, -1) for u in user_ids), np.int64, len(user_ids))
        return np.fromiter((get(u, -1) for u in user_ids), np.int64, len(user_ids))

    def knows_user(self, uid: str) -> bool:
        """The user has a row that was not evicted."""
        return uid in self.users and uid not in self.dead_users

    @property
    def n_live_items(self) -> int:
        """Items in the catalogue (rows of evicted items not counted)."""
        return len(self.item_state)

    def item_changed(self, row: int, st: ItemState) -> None:
        """An item's per-row arrays follow its (new) state."""
        self.item_ts[row] = st.ts
        self.item_author[row] = self.user_row(st.author) if st.author else -1

    def activity_of(self, uid: str) -> ActivityState:
        """The user's activity value, created (with a user row) on first use."""
        st = self.activity.get(uid)
        if st is None:
            st = self.activity[uid] = ActivityState(ids=RecentIds(self.settings.dedup_ids_per_key))
            self.user_row(uid)
        return st

    def social_of(self, uid: str) -> SocialState:
        """The user's follows value, created (with a user row) on first use."""
        st = self.social.get(uid)
        if st is None:
            st = self.social[uid] = SocialState({}, {}, RecentIds(self.settings.dedup_ids_per_key))
            self.user_row(uid)
        return st

    # ------------------------------------------------------------------ the follow graph
    def set_edge(self, row: int, target: str, *, on: bool) -> None:
        """A follow edge's derived bookkeeping: the edge count and the reverse (followers) index."""
        trow = self.user_row(target)
        if on:
            self.n_edges += 1
            self.followers.setdefault(trow, set()).add(row)
        else:
            self.n_edges -= 1
            self.followers.get(trow, set()).discard(row)

    def follows_changed(self, row: int) -> None:
        """Drop what was cached from ``row``'s follow lists (rows, the CSR)."""
        self._fol_rows.pop(row, None)
        self._unfollowed_rows.pop(row, None)
        self._csr = None

    def following_rows(self, row: int) -> np.ndarray:
        st = self.social.get(self.users.id(row)) if row not in self._fol_rows else None
        return _cached_rows(self._fol_rows, row, st.following if st else (), self.users)

    def unfollowed_rows(self, row: int) -> np.ndarray:
        st = self.social.get(self.users.id(row)) if row not in self._unfollowed_rows else None
        return _cached_rows(self._unfollowed_rows, row, st.unfollowed if st else (), self.users)

    def csr(self) -> Csr:
        """Follow graph as CSR: (followee indptr, indices, follower indptr, indices); rebuilt on change."""
        nu = len(self.users)
        c = self._csr
        if c is not None and c[0].shape[0] == nu + 1:
            return c
        arrs = [self.following_rows(r) for r in range(nu)]
        lens = np.fromiter((a.shape[0] for a in arrs), np.int64, nu)
        indptr = np.zeros(nu + 1, np.int64)
        np.cumsum(lens, out=indptr[1:])
        indices = np.concatenate(arrs) if int(indptr[-1]) else np.zeros(0, np.int64)
        src = np.repeat(np.arange(nu, dtype=np.int64), lens)
        order = np.argsort(indices, kind="stable")
        rindptr = np.zeros(nu + 1, np.int64)
        np.cumsum(np.bincount(indices, minlength=nu), out=rindptr[1:])
        self._csr = (indptr, indices, rindptr, src[order])
        return self._csr

    def pairs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``rows``, followee row) for each followee of each (known, >= 0) row."""
        indptr, indices, _, _ = self.csr()
        return gather(indptr, indices, np.asarray(rows, np.int64))

    def followers_of(self, rows: np.ndarray) -> np.ndarray:
        """Every follower of any of ``rows``, unique."""
        _, _, rindptr, rindices = self.csr()
        return np.unique(gather(rindptr, rindices, np.asarray(rows, np.int64))[1])

    # ------------------------------------------------------------------ seen items
    def seen_rows(self, row: int) -> np.ndarray:
        """Item rows the user engaged with (the filter), memoised until ``forget_seen``."""
        st = self.activity.get(self.users.id(row)) if row not in self._seen_rows else None
        return _cached_rows(self._seen_rows, row, st.seen if st else (), self.items)

    def seen_appended(self, row: int, item_row: int) -> None:
        """One item joined the end of the user's seen list and none left: extend the memo in place."""
        cached = self._seen_rows.get(row)
        if cached is not None:
            self._seen_rows[row] = np.append(cached, item_row)

    def forget_seen(self, row: int) -> None:
        self._seen_rows.pop(row, None)

    # ------------------------------------------------------------------ clock, gauges
    def now(self, now: float | None) -> float:
        return self.clock if now is None else float(now)

    def advance_clock(self, latest: float) -> None:
        """Move the event-time clock to ``latest``, but never past wall time + MAX_CLOCK_SKEW_S.

        Event times are accepted up to ``max_timestamp_s`` (year 2100): one event stamped in the
        future must not expire the whole catalogue for everyone, neither live (``learn_many``,
        ``upsert``) nor after every restart (``restore`` reads that event's ``ts`` back from the tables).
        """
        self.clock = max(self.clock, min(latest, time.time() + MAX_CLOCK_SKEW_S))

    def update_graph_gauges(self) -> None:
        metrics.GRAPH_NODES.labels(kind="users").set(len(self.users) - len(self.dead_users))
        metrics.GRAPH_NODES.labels(kind="items").set(len(self.item_state))
        metrics.GRAPH_EDGES.set(self.n_edges)

"""The service engine: events in, state and embeddings updated incrementally, recommendations out.

Pure library (no Kafka): a stream agent decodes a micro-batch, calls :meth:`Engine.learn_many`,
writes ``table_updates`` to its tables and publishes :meth:`Engine.recommend_many` for the
touched users. After a restart, :meth:`Engine.restore` rebuilds everything from the tables.

Zero-shot model (``model_version == "zero-shot"``, served until a trained snapshot exists)
----------------------------------------------------------------------------------------
For user ``u`` and item ``i`` (all text vectors L2-normalised, from the text tower)::

    interest(u) = normalise( profile_weight * e(profile_u)
                             + sum_j w_j * 2^((ts_j - t_u) / interest_half_life) * e(item_j)
                             + sum_c 0.5 * sentiment_c * 2^((ts_c - t_u) / interest_half_life) * e(comment_c) )
        w_j: click 1 (0.3 under 1 s dwell, capped at 3 for repeats), like +2, comment
             0.5 + 1.5 * VADER compound (negative for "this is awful"; a negative comment caps the
             item's summed weight at its own, so a click then "this is awful" nets below zero;
             sentiment_weighting=false: |compound|); t_u = u's latest event time,
             so the vector is independent of the clock and the same after a restore.
    social(u)   = normalise( sum_{k=1..K} 0.5^(k-1) * h_k(u) ),  h_0 = interest,
                  h_k(u) = mean_{f followed by u} h_{k-1}(f)        (parameter-free K-hop propagation,
                  K = gnn_layers; recomputed only for the affected k-hop neighbourhood of a batch)
    q(u)        = normalise( interest(u) + zs_weight_social_tower * social(u) )
    proof(u, i) = 1 - exp( - sum_{f followed by u, w_fi > 0} w_fi * 2^(-(now - ts_fi) / interest_half_life) )
    pop(i)      = log1p(P_i) / log1p(max_j P_j),  P_i = sum over users' recent engagements with i of
                  max(w, 0) * 2^(-(now - ts) / popularity_half_life)
    score(u, i) = zs_weight_text * cos(q(u), e(i)) + zs_weight_social * proof(u, i) + zs_weight_popularity * pop(i)

Candidates: every live item (published within ``item_ttl_s``) while the catalogue is at most
``ann_threshold`` items; above it, items fresh within ``fresh_window_s`` plus the
``ann_candidates`` nearest items of q(u) from a faiss HNSW index plus the items followed users
engaged with. Filters: items the user engaged with (``seen``), the user's own items, expired
items. Reasons come from the evidence behind the pick, in this order: followed users who liked it
("liked by 2 people you follow"; only followed users' public likes are ever counted, none is named;
their clicks are private and never cited), the most
similar of the user's recent engagements when the text term led ("similar to "<text>" you
liked"), overlapping profile words ("matches your interests: folk"), popularity ("popular now").

Not thread-safe: one engine per worker, called from one thread at a time.

Fused model: when a snapshot is loaded (``service/fused.py``, :meth:`Engine.swap_model`), the
same candidates, filters and reasons apply; only the score becomes the fused head's logit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
import warnings
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, cast

import numpy as np
import torch
from torch import Tensor

from socrec_online import metrics
from socrec_online.devices import resolve_device, service_text_dtype, set_service_torch_threads
from socrec_online.events import TOPIC_OF, Click, Comment, Event, Follow, ItemPublished, Like, Profile, Query
from socrec_online.idmap import IdMap
from socrec_online.service.decode import DeadLetterReason
from socrec_online.service.fused import GraphChanges
from socrec_online.service.heap import freeze_long_lived
from socrec_online.service.queries import QueryRule, query_scores
from socrec_online.service.rec_id import rec_id
from socrec_online.service.state import (
    BOUNCE_MS,
    ENTRY_BYTES,
    K_CLICK,
    K_COMMENT,
    K_LIKE,
    MAX_COMMENTS,
    MAX_UNFOLLOWED,
    W_BOUNCE,
    W_CLICK,
    W_CLICK_CAP,
    W_LIKE,
    ActivityState,
    ItemState,
    Position,
    RecentIds,
    SocialState,
    comment_weight,
    json_bytes,
    load_tables,
    mark_applied,
    release,
    replayed,
)
from socrec_online.settings import Settings
from socrec_online.types import SCHEMA_VERSION, ZERO_SHOT_VERSION, ItemId, UserId

__all__ = ["BatchResult", "Engine", "TextEncoderLike", "service_text_dtype", "set_service_torch_threads", "vader_sentiment"]

log = logging.getLogger(__name__)

_NEG = -1e30
_MAX_CLOCK_SKEW_S = 3600.0
"""The event-time clock never runs further than this past wall time (see ``Engine._advance_clock``)."""
_TIE = 1e-5  # weight of the id-derived tie-break added to every score
_SIMILAR_LAST = 16  # "similar to X you liked" looks at the user's last 16 engagements
_REASON_TEXT_CHARS = 40
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "are",
        "but",
        "not",
        "you",
        "your",
        "all",
        "any",
        "can",
        "had",
        "her",
        "was",
        "one",
        "our",
        "out",
        "has",
        "him",
        "his",
        "how",
        "its",
        "may",
        "new",
        "now",
        "old",
        "see",
        "two",
        "who",
        "boy",
        "did",
        "get",
        "let",
        "put",
        "say",
        "she",
        "too",
        "use",
        "like",
        "love",
        "this",
        "that",
        "from",
        "into",
        "about",
        "what",
        "when",
        "why",
        "best",
        "plus",
        "year",
        "week",
        "weekly",
        "notes",
        "guide",
        "beginner",
        "live",
        "every",
        "time",
        "beats",
        "than",
        "them",
        "they",
        "their",
        "there",
        "just",
        "some",
        "more",
        "most",
        "very",
        "much",
        "also",
        "been",
        "being",
        "have",
        "having",
        "i'm",
        "really",
    ]
)
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]{2,23}")  # bounded: reasons stay short


class TextEncoderLike(Protocol):
    """What the engine needs from the text tower (socrec_online.models.text.TextEncoder)."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], progress: bool = False) -> Tensor: ...  # (N, dim) normalised


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, DeadLetterReason, str]] = field(default_factory=list)
    touched_users: list[UserId] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    table_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_event_ids: dict[UserId, str] = field(default_factory=dict)
    who_to_follow_users: list[UserId] = field(default_factory=list)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _cut(text: str, n: int = _REASON_TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _grow(a: np.ndarray, n: int, fill: Any) -> np.ndarray:
    if a.shape[0] >= n:
        return a
    new = np.full((max(n, 2 * a.shape[0], 64),) + a.shape[1:], fill, dtype=a.dtype)
    new[: a.shape[0]] = a
    return new


def _grow_t(t: Tensor, n: int, dim0: int = 0) -> Tensor:
    if t.shape[dim0] >= n:
        return t
    shape = list(t.shape)
    shape[dim0] = max(n, 2 * t.shape[dim0], 64)
    new = torch.zeros(shape, dtype=t.dtype, device=t.device)
    new.narrow(dim0, 0, t.shape[dim0]).copy_(t)
    return new


def _normalise(x: Tensor) -> Tensor:
    n = x.norm(dim=-1, keepdim=True)  # (B, 1)
    return x / torch.where(n > 1e-9, n, torch.inf)  # a zero row stays zero; one full-size op


def vader_sentiment(cache_size: int = 50_000) -> Callable[[str], float]:
    """VADER compound score in [-1, 1]: lexicon-based, made for social-media text, no download.

    Cached per text: short reactions ("love it") repeat a lot and VADER costs ~0.3 ms a call.
    """
    from functools import lru_cache

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    @lru_cache(maxsize=cache_size)
    def score(text: str) -> float:
        return float(analyzer.polarity_scores(text)["compound"])

    return score


def _tiebreak(id_: str) -> float:
    return zlib.crc32(id_.encode("utf-8", "surrogatepass")) / 4294967296.0


def _csr_mm(counts: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_cols: int, dense: Tensor) -> Tensor:
    """(len(counts), n_cols) sparse rows (CSR: per-row counts, columns, values) @ dense (n_cols, D).

    Avoids materialising the (nnz, D) gather an index_add would need.
    """
    dev = dense.device
    if not cols.size:
        return torch.zeros(len(counts), dense.shape[1], device=dev, dtype=dense.dtype)
    crow = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=crow[1:])
    with warnings.catch_warnings():  # "CSR support is in beta": a one-time notice, not a problem
        warnings.simplefilter("ignore", UserWarning)
        a = torch.sparse_csr_tensor(
            torch.from_numpy(crow).to(dev),
            torch.from_numpy(np.ascontiguousarray(cols, np.int64)).to(dev),
            torch.from_numpy(np.ascontiguousarray(vals, np.float32)).to(dev, dense.dtype),
            size=(len(counts), n_cols),
            check_invariants=False,  # built right here from a CSR gather: valid by construction
        )
    return a @ dense


@dataclass
class _Top:
    """Top-k picks per user and the evidence behind each, all (B, k) arrays (row -1 = no pick)."""

    rows: np.ndarray
    score: np.ndarray
    c_text: np.ndarray
    c_social: np.ndarray
    c_pop: np.ndarray
    n_eng: np.ndarray
    n_like: np.ndarray

    @staticmethod
    def empty(b: int) -> _Top:
        z = np.zeros((b, 0), np.float32)
        zi = np.zeros((b, 0), np.int64)
        return _Top(zi, z, z, z, z, zi, zi)


_COUNT_REASONS: dict[tuple[str, int], str] = {}


def _count_reason(what: str, n: int) -> str:
    """'liked by 1 person you follow' / 'followed by 3 people you follow' (cached: hot path)."""
    r = _COUNT_REASONS.get((what, n))
    if r is None:
        r = _COUNT_REASONS[(what, n)] = f"{what} {n} {'person' if n == 1 else 'people'} you follow"
    return r


class Engine:
    TABLES: ClassVar[tuple[str, ...]] = ("social", "items", "activity")

    def __init__(
        self,
        settings: Settings,
        text_encoder: TextEncoderLike,
        model: Any | None = None,
        model_version: str = ZERO_SHOT_VERSION,
        sentiment: Callable[[str], float] | None = None,
    ) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.encoder = text_encoder
        self.dim = int(text_encoder.dim)
        self._sentiment = sentiment or vader_sentiment()
        self.model: Any | None = None
        self.model_version = ZERO_SHOT_VERSION
        # a given model attaches on the first call, i.e. after restore() has rebuilt the state
        self._pending: tuple[Any | None, str] | None = (model, model_version) if model is not None else None
        self._hit_window: deque[bool] = deque(maxlen=2000)
        self._last_recs: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._reset()
        metrics.set_model_version(self.model_version)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """The real text tower (MiniLM unless configured) and the current good snapshot, if any."""
        from socrec_online.models.text import TextEncoder, TextEncoderConfig

        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        cfg = TextEncoderConfig.from_settings(settings)
        dtype = service_text_dtype(settings)
        if dtype != cfg.dtype:
            cfg = dataclasses.replace(cfg, dtype=dtype)
        encoder = TextEncoder(cfg)
        model, version = _load_current_model(settings, encoder)
        return cls(settings, encoder, model=model, model_version=version)

    def _reset(self) -> None:
        d, dev, k_layers = self.dim, self.device, self.settings.gnn_layers
        r = self.settings.recent_per_user
        self.items = IdMap()
        self.users = IdMap()
        self.item_state: dict[ItemId, ItemState] = {}
        self.social: dict[UserId, SocialState] = {}
        self.activity: dict[UserId, ActivityState] = {}
        self.followers: dict[int, set[int]] = {}
        self._fol_rows: dict[int, np.ndarray] = {}
        self._seen_rows: dict[int, np.ndarray] = {}
        self._unfollowed_rows: dict[int, np.ndarray] = {}
        self._csr_cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._bufs: dict[str, Tensor] = {}
        self.n_edges = 0
        self.clock = 0.0
        # items (row-aligned)
        self.item_emb = torch.zeros(0, d, device=dev)  # (I, D)
        self.item_ts = np.zeros(0, np.float64)  # (I,) -inf = not published
        self.item_author = np.zeros(0, np.int64)  # (I,) user row or -1
        self.item_tb = np.zeros(0, np.float32)  # (I,) tie-break in [0, 1) from the id
        # users (row-aligned)
        self.eng_item = np.zeros((0, r), np.int64)  # (U, R) item rows, -1 pad
        self.eng_w = np.zeros((0, r), np.float32)  # (U, R)
        self.eng_ts = np.zeros((0, r), np.float64)  # (U, R)
        self.eng_kind = np.zeros((0, r), np.int8)  # (U, R) K_* bitmask
        self.interest = torch.zeros(0, d, device=dev)  # (U, D)
        self.hops = torch.zeros(k_layers, 0, d, device=dev)  # (K, U, D)
        self.social_vec = torch.zeros(0, d, device=dev)  # (U, D)
        self.has_interest = np.zeros(0, bool)  # (U,)
        self.profile_emb = torch.zeros(0, d, device=dev)  # (U, D)
        self.has_profile = np.zeros(0, bool)  # (U,)
        self.user_last_ts = np.zeros(0, np.float64)  # (U,) latest event time (the interest anchor)
        self.user_tb = np.zeros(0, np.float64)  # (U,) tie-break in [0, 1) from the id
        self._comment_emb: dict[int, Tensor] = {}  # user row -> (n, D), aligned with activity.comments
        self._ann: Any | None = None
        self._ann_n = 0
        self._ann_stale = False
        self._item_text_words: dict[int, frozenset[str]] = {}
        self._sim_reason_cache: dict[tuple[int, bool], str] = {}

    # ------------------------------------------------------------------ small helpers
    def knows_item(self, item_id: str) -> bool:
        return item_id in self.item_state

    # ------------------------------------------------------------------ reads (the HTTP API)
    def recommend_now(self, user_id: str, kind: Literal["items", "users"] = "items") -> dict[str, Any] | None:
        """One user's list of ``kind`` scored now (source_event_id None), or None for a user the engine
        does not know. A read: the list is not remembered as shown (the online hit ratio counts what
        was published), and nothing else the worker keeps or publishes changes."""
        if user_id not in self.users:
            return None
        shown = self._last_recs.get(user_id)
        payloads = self.recommend_many([user_id], who_to_follow=kind == "users")
        if shown is None:
            self._last_recs.pop(user_id, None)
        else:
            self._last_recs[user_id] = shown
        return next(p for p in payloads if p["kind"] == kind)

    def answer_now(self, user_id: str, text: str, k: int | None = None) -> dict[str, Any] | None:
        """A kind "query" payload for ``text`` asked by ``user_id`` (at most ``k`` items), or None for
        a user the engine does not know. A read like ``recommend_now``: no event, no state change."""
        if user_id not in self.users:
            return None
        payload = self.answer_queries([Query(event_id="", user_id=user_id, ts=self.clock, text=text)])[0]
        items = payload["items"][:k] if k is not None else payload["items"]
        ids = (str(i["id"]) for i in items)
        return {**payload, "items": items, "source_event_id": None, "rec_id": rec_id(None, user_id, "query", ids)}

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self.users),
            "items": len(self.items),
            "edges": self.n_edges,
            "profiles": sum(1 for a in self.activity.values() if a.profile),
            "ann_items": self._ann_n,
        }

    def _user_row(self, uid: str) -> int:
        row = self.users.add(uid)
        if row >= self.eng_item.shape[0]:
            n = row + 1
            self.eng_item = _grow(self.eng_item, n, -1)
            self.eng_w = _grow(self.eng_w, n, 0.0)
            self.eng_ts = _grow(self.eng_ts, n, 0.0)
            self.eng_kind = _grow(self.eng_kind, n, 0)
            self.has_interest = _grow(self.has_interest, n, False)
            self.has_profile = _grow(self.has_profile, n, False)
            self.user_last_ts = _grow(self.user_last_ts, n, 0.0)
            self.user_tb = _grow(self.user_tb, n, 0.0)
        if row >= self.interest.shape[0]:
            self.interest = _grow_t(self.interest, row + 1)
            self.social_vec = _grow_t(self.social_vec, row + 1)
            self.profile_emb = _grow_t(self.profile_emb, row + 1)
            self.hops = _grow_t(self.hops, row + 1, dim0=1)
        if row == len(self.users) - 1:  # (re)set for the newest row; rows never change meaning
            self.user_tb[row] = _tiebreak(uid)
        return row

    def _set_edge(self, row: int, target: str, *, on: bool) -> None:
        """A follow edge's derived bookkeeping: the edge count and the reverse (followers) index."""
        trow = self._user_row(target)
        if on:
            self.n_edges += 1
            self.followers.setdefault(trow, set()).add(row)
        else:
            self.n_edges -= 1
            self.followers.get(trow, set()).discard(row)

    def _follows_changed(self, row: int) -> None:
        """Drop what was cached from ``row``'s follow lists (rows, the social tower's CSR)."""
        self._fol_rows.pop(row, None)
        self._unfollowed_rows.pop(row, None)
        self._csr_cache = None

    def _item_row_changed(self, row: int, st: ItemState) -> None:
        """An item's per-row arrays and caches follow its (new) state."""
        self.item_ts[row] = st.ts
        self.item_author[row] = self._user_row(st.author) if st.author else -1
        self._item_text_words.pop(row, None)
        self._sim_reason_cache.pop((row, True), None)
        self._sim_reason_cache.pop((row, False), None)

    def _item_row(self, iid: str) -> int:
        row = self.items.add(iid)
        if row >= self.item_ts.shape[0]:
            self.item_ts = _grow(self.item_ts, row + 1, -np.inf)
            self.item_author = _grow(self.item_author, row + 1, -1)
            self.item_tb = _grow(self.item_tb, row + 1, 0.0)
        self.item_tb[row] = _tiebreak(iid)
        if row >= self.item_emb.shape[0]:
            self.item_emb = _grow_t(self.item_emb, row + 1)
        return row

    def _activity(self, uid: str) -> ActivityState:
        st = self.activity.get(uid)
        if st is None:
            st = self.activity[uid] = ActivityState(ids=RecentIds(self.settings.dedup_ids_per_key))
            self._user_row(uid)
        return st

    def _social(self, uid: str) -> SocialState:
        st = self.social.get(uid)
        if st is None:
            st = self.social[uid] = SocialState({}, {}, RecentIds(self.settings.dedup_ids_per_key))
            self._user_row(uid)
        return st

    @staticmethod
    def _cached_rows(cache: dict[int, np.ndarray], row: int, ids: Iterable[str], idmap: IdMap) -> np.ndarray:
        """Rows of ``ids`` known to ``idmap`` (in order), memoised per user row until invalidated."""
        a = cache.get(row)
        if a is None:
            rows = [r for r in map(idmap.get, ids) if r is not None]
            a = cache[row] = np.asarray(rows, np.int64)
        return a

    def _fol_arr(self, row: int) -> np.ndarray:
        st = self.social.get(self.users.id(row)) if row not in self._fol_rows else None
        return self._cached_rows(self._fol_rows, row, st.following if st else (), self.users)

    def _seen_arr(self, row: int) -> np.ndarray:
        st = self.activity.get(self.users.id(row)) if row not in self._seen_rows else None
        return self._cached_rows(self._seen_rows, row, st.seen if st else (), self.items)

    def _unfollowed_arr(self, row: int) -> np.ndarray:
        st = self.social.get(self.users.id(row)) if row not in self._unfollowed_rows else None
        return self._cached_rows(self._unfollowed_rows, row, st.unfollowed if st else (), self.users)

    def _clock(self, now: float | None) -> float:
        return self.clock if now is None else float(now)

    def _advance_clock(self, latest: float) -> None:
        """Move the event-time clock to ``latest``, but never past wall time + _MAX_CLOCK_SKEW_S.

        Event times are accepted up to ``max_timestamp_s`` (year 2100): one event stamped in the
        future must not expire the whole catalogue for everyone, neither live (``learn_many``,
        ``upsert``) nor after every restart (``restore`` reads that event's ``ts`` back from the tables).
        """
        self.clock = max(self.clock, min(latest, time.time() + _MAX_CLOCK_SKEW_S))

    # ------------------------------------------------------------------ learning
    def learn_many(
        self, events: Sequence[Event], now: float | None = None, positions: Sequence[Position | None] | None = None
    ) -> BatchResult:
        """Apply a micro-batch; never raises on data (bad events come back in ``rejected``).

        The event-time clock (freshness, TTL, decay) advances to the largest ``ts`` applied, or to
        ``now`` when given and later (pass wall time only for live, not replayed, streams).
        ``positions`` (one per event: where the worker read it) make a replay after a crash exact:
        an event its value already applied is a duplicate (``state.replayed``), however many
        events of the key came in between; without them, applied event ids decide (a window).
        """
        self._apply_pending_model()
        if now is not None:
            self.clock = max(self.clock, float(now))
        res = BatchResult()
        s = self.settings
        act_changed: set[str] = set()
        soc_changed: set[str] = set()
        items_changed: set[str] = set()
        eng_changed: set[int] = set()  # user rows whose engagements changed
        interest_dirty: set[int] = set()
        follow_changed: set[int] = set()
        new_item_text: dict[int, str] = {}
        retexted: list[int] = []  # existing items whose text changed: their engagers' interests move
        new_profile: dict[int, str] = {}
        new_comments: dict[int, int] = {}  # user row -> comments appended this batch
        touched: dict[str, str] = {}
        fanout_from: dict[int, str] = {}  # user rows whose followers may see new social proof
        fresh_items: list[float] = []
        outcomes: dict[tuple[str, str], int] = {}
        feed_model = self.model is not None and hasattr(self.model, "learn_batch")
        changes = GraphChanges()

        latest = self.clock

        def outcome(topic: str, what: str) -> None:
            outcomes[(topic, what)] = outcomes.get((topic, what), 0) + 1

        with metrics.stage("graph"):
            for idx, ev in enumerate(events):
                t = type(ev)
                pos = positions[idx] if positions is not None else None
                if t is Click or t is Like or t is Comment:
                    ev = cast(Click | Like | Comment, ev)  # narrowing for mypy; no runtime isinstance
                    topic = "clicks" if t is Click else "likes" if t is Like else "comments"
                    # a refused event leaves no state behind (no user row a restart would not rebuild)
                    known = self.activity.get(ev.user_id)
                    if known is not None and (ev.event_id in known.ids or replayed(known.applied, pos)):
                        res.duplicates += 1
                        outcome(topic, "duplicate")
                        continue
                    if ev.item_id not in self.item_state:
                        res.rejected.append(
                            (idx, DeadLetterReason.unknown_item, f"item {ev.item_id[:100]!r} unknown")
                        )
                        outcome(topic, "rejected")
                        if known is not None and release(known.applied, pos):
                            act_changed.add(ev.user_id)
                        continue
                    st = known if known is not None else self._activity(ev.user_id)
                    row = self.users.row(ev.user_id)
                    n_seen = len(st.seen)
                    was_seen = ev.item_id in st.seen
                    if isinstance(ev, Click):
                        prev = st.recent.get(ev.item_id)
                        w = W_BOUNCE if ev.dwell_ms is not None and ev.dwell_ms < BOUNCE_MS else W_CLICK
                        have = prev[0] if prev is not None and prev[2] & K_CLICK else 0.0
                        w = max(0.0, min(w, W_CLICK_CAP - have)) if prev is not None else w
                        st.engage(ev.item_id, w, ev.ts, K_CLICK, s.recent_per_user, s.seen_per_user)
                        recs = self._last_recs.get(ev.user_id)
                        if recs is not None:
                            self._hit_window.append(ev.item_id in recs)
                    elif isinstance(ev, Like):
                        prev = st.recent.get(ev.item_id)
                        liked = prev is not None and bool(prev[2] & K_LIKE)
                        if ev.undo:
                            if liked and prev is not None:  # in place: an undo is not a new engagement
                                st.recent[ev.item_id] = (prev[0] - W_LIKE, prev[1], prev[2] & ~K_LIKE)
                        elif not liked:
                            st.engage(ev.item_id, W_LIKE, ev.ts, K_LIKE, s.recent_per_user, s.seen_per_user)
                    else:
                        sent = self._sentiment(ev.text)
                        if not s.sentiment_weighting:  # the ablation: sign ignored, every comment positive
                            sent = abs(sent)
                        cw = comment_weight(sent)
                        prev = st.recent.get(ev.item_id)
                        if sent < 0 and prev is not None:
                            # said in words, it overrides the implicit click: "this is awful" after a
                            # click leaves the item (and its neighbours) at most at the comment's weight
                            cw = min(cw, cw - prev[0])
                        st.engage(
                            ev.item_id,
                            cw,
                            ev.ts,
                            K_COMMENT,
                            s.recent_per_user,
                            s.seen_per_user,
                        )
                        st.comments.append((ev.item_id, ev.text, ev.ts, sent))
                        if len(st.comments) > MAX_COMMENTS:
                            del st.comments[0]
                        new_comments[row] = new_comments.get(row, 0) + 1
                    st.ids.add(ev.event_id)
                    mark_applied(st.applied, pos)
                    st.last_ts = max(st.last_ts, ev.ts)
                    st.grow(2 * json_bytes(ev.item_id) + json_bytes(ev.event_id) + 2 * ENTRY_BYTES)
                    if isinstance(ev, Comment):
                        st.grow(json_bytes(ev.text))
                    if feed_model:
                        e = st.recent.get(ev.item_id)
                        changes.engaged[(ev.user_id, ev.item_id)] = e[0] if e is not None else 0.0
                    if not was_seen and ev.item_id in st.seen:
                        cached = self._seen_rows.get(row)
                        if cached is not None and len(st.seen) > n_seen:  # appended, nothing evicted
                            self._seen_rows[row] = np.append(cached, self.items.row(ev.item_id))
                        else:
                            self._seen_rows.pop(row, None)
                    act_changed.add(ev.user_id)
                    eng_changed.add(row)
                    interest_dirty.add(row)
                    touched[ev.user_id] = ev.event_id
                    fanout_from[row] = ev.event_id
                elif t is Follow:
                    ev = cast(Follow, ev)
                    known_s = self.social.get(ev.user_id)
                    if known_s is not None and (ev.event_id in known_s.ids or replayed(known_s.applied, pos)):
                        res.duplicates += 1
                        outcome("follows", "duplicate")
                        continue
                    if ev.target_id == ev.user_id:
                        res.rejected.append(
                            (idx, DeadLetterReason.self_follow, "a user cannot follow themselves")
                        )
                        outcome("follows", "rejected")
                        continue
                    if not ev.undo and known_s is not None and known_s.full(ev.target_id, s.max_following):
                        full = f"already following {s.max_following} users"
                        res.rejected.append((idx, DeadLetterReason.state_too_large, full))
                        outcome("follows", "rejected")
                        continue
                    cost = json_bytes(ev.target_id) + json_bytes(ev.event_id) + ENTRY_BYTES
                    if (
                        not ev.undo
                        and known_s is not None
                        and ev.target_id not in known_s.following
                        and not known_s.fits(cost, s.max_table_value_bytes)
                    ):
                        full = f"the follows value would pass {s.max_table_value_bytes} bytes"
                        res.rejected.append((idx, DeadLetterReason.state_too_large, full))
                        outcome("follows", "rejected")
                        continue
                    sst = known_s if known_s is not None else self._social(ev.user_id)
                    sst.grow(cost)
                    row = self.users.row(ev.user_id)
                    self._user_row(ev.target_id)  # a followed user has a row before any event of theirs
                    if ev.undo:
                        if sst.following.pop(ev.target_id, None) is not None:
                            self._set_edge(row, ev.target_id, on=False)
                        sst.unfollowed.pop(ev.target_id, None)
                        sst.unfollowed[ev.target_id] = ev.ts
                        while len(sst.unfollowed) > MAX_UNFOLLOWED:
                            del sst.unfollowed[next(iter(sst.unfollowed))]
                    else:
                        if ev.target_id not in sst.following:
                            sst.following[ev.target_id] = ev.ts
                            self._set_edge(row, ev.target_id, on=True)
                        sst.unfollowed.pop(ev.target_id, None)
                    sst.ids.add(ev.event_id)
                    mark_applied(sst.applied, pos)
                    sst.last_ts = max(sst.last_ts, ev.ts)
                    if feed_model:
                        changes.follows.append((ev.user_id, ev.target_id, ev.undo))
                    self._follows_changed(row)
                    soc_changed.add(ev.user_id)
                    follow_changed.add(row)
                    touched[ev.user_id] = ev.event_id
                elif t is ItemPublished:
                    ev = cast(ItemPublished, ev)
                    ist = self.item_state.get(ev.item_id)
                    if ist is not None and (ev.event_id in ist.ids or replayed(ist.applied, pos)):
                        res.duplicates += 1
                        outcome("items", "duplicate")
                        continue
                    row = self._item_row(ev.item_id)
                    if ist is None:
                        ist = self.item_state[ev.item_id] = ItemState(
                            ev.text, ev.ts, ev.author_id, list(ev.tags), RecentIds(s.dedup_ids_per_key)
                        )
                        new_item_text[row] = ev.text
                        fresh_items.append(ev.ts)
                    else:
                        if ist.text != ev.text:
                            new_item_text[row] = ev.text
                            retexted.append(row)
                            self._ann_stale = True
                        ist.text, ist.ts, ist.author, ist.tags = ev.text, ev.ts, ev.author_id, list(ev.tags)
                    ist.ids.add(ev.event_id)
                    mark_applied(ist.applied, pos)
                    self._item_row_changed(row, ist)
                    items_changed.add(ev.item_id)
                elif t is Profile:
                    ev = cast(Profile, ev)
                    st = self._activity(ev.user_id)
                    if ev.event_id in st.ids or replayed(st.applied, pos):
                        res.duplicates += 1
                        outcome("profiles", "duplicate")
                        continue
                    row = self.users.row(ev.user_id)
                    st.profile, st.profile_ts = ev.text, ev.ts
                    st.ids.add(ev.event_id)
                    mark_applied(st.applied, pos)
                    st.grow(json_bytes(ev.text) + json_bytes(ev.event_id) + ENTRY_BYTES)
                    st.last_ts = max(st.last_ts, ev.ts)
                    new_profile[row] = ev.text
                    interest_dirty.add(row)
                    act_changed.add(ev.user_id)
                    touched[ev.user_id] = ev.event_id
                elif t is Query:
                    ev = cast(Query, ev)
                    st = self._activity(ev.user_id)
                    if ev.event_id in st.ids or replayed(st.applied, pos):
                        res.duplicates += 1
                        outcome("queries", "duplicate")
                        continue
                    st.ids.add(ev.event_id)
                    mark_applied(st.applied, pos)
                    st.last_ts = max(st.last_ts, ev.ts)
                    st.grow(json_bytes(ev.event_id) + ENTRY_BYTES)
                    act_changed.add(ev.user_id)
                    res.queries.append(ev)
                else:  # not an Event: a caller bug, but still never a crash
                    res.rejected.append(
                        (idx, DeadLetterReason.unknown_topic, f"not an event: {type(ev).__name__}")
                    )
                    continue
                res.applied += 1
                outcome(TOPIC_OF[t], "ok")
                latest = max(latest, ev.ts)
        self._advance_clock(latest)

        with metrics.stage("embed"):
            for u in act_changed:
                self.user_last_ts[self.users.row(u)] = self.activity[u].last_ts
            self._derive(
                new_item_text, new_profile, new_comments, eng_changed, interest_dirty, follow_changed, retexted,
                changes if feed_model else None,
            )

        # Followers of users who engaged see new social proof: republish them too (bounded).
        cap = s.fanout_max_users
        extra = 0
        for row, eid in fanout_from.items():
            if extra >= cap:
                break
            for frow in self.followers.get(row, ()):
                fid = self.users.id(frow)
                if fid not in touched:
                    touched[fid] = eid
                    extra += 1
                    if extra >= cap:
                        break
        res.touched_users = list(touched)
        res.source_event_ids = touched
        wtf = {self.users.id(r) for r in follow_changed} | {self.users.id(r) for r in new_profile}
        res.who_to_follow_users = [u for u in touched if u in wtf]
        upd: dict[str, dict[str, Any]] = {}
        if soc_changed:
            upd["social"] = {u: self.social[u].to_json() for u in soc_changed}
        if items_changed:
            upd["items"] = {i: self.item_state[i].to_json() for i in items_changed}
        if act_changed:
            for u in act_changed:
                trimmed = self.activity[u].trim_to(s.max_table_value_bytes)
                if trimmed:
                    metrics.STATE_TRIMMED.labels(table="activity").inc(trimmed)
                    self._seen_rows.pop(self.users.row(u), None)
            upd["activity"] = {u: self.activity[u].to_json() for u in act_changed}
        res.table_updates = upd

        for (topic, what), n in outcomes.items():
            metrics.EVENTS.labels(topic=topic, outcome=what).inc(n)
        wall = time.time()
        for ts in fresh_items:
            if 0.0 <= wall - ts < 3600.0:  # live items only; a replayed dataset is not 'late'
                metrics.ITEM_FRESHNESS.observe(wall - ts)
        if self._hit_window:
            metrics.ONLINE_HIT_RATIO.set(sum(self._hit_window) / len(self._hit_window))
        self._update_graph_gauges()
        return res

    def _derive(
        self,
        item_text: dict[int, str],
        profiles: dict[int, str],
        comments: dict[int, int],
        eng_changed: set[int],
        interest_dirty: set[int],
        follow_changed: set[int],
        retexted: list[int],
        changes: GraphChanges | None,
    ) -> None:
        """Bring the derived state up to date with changed raw state: encode the new texts (one call),
        refresh engagements, interests, the social tower of the affected k-hop neighbourhood, the
        ANN index and the attached model's graph."""
        self._embed_texts(item_text, profiles, comments)
        self._rebuild_eng_rows(list(eng_changed))
        if retexted:
            nu = len(self.users)
            hit = np.isin(self.eng_item[:nu], np.asarray(retexted, np.int64)).any(axis=1)
            interest_dirty.update(np.nonzero(hit)[0].tolist())
        if interest_dirty:
            self._recompute_interest(np.fromiter(interest_dirty, np.int64, len(interest_dirty)))
        if interest_dirty or follow_changed:
            self._propagate(interest_dirty, follow_changed)
        if item_text:
            self._ann_add()
        if changes is not None and self.model is not None:
            changes.item_ids = self.items.ids(item_text)
            changes.item_rows = list(item_text)
            self.model.learn_batch(self, changes)

    def _update_graph_gauges(self) -> None:
        metrics.GRAPH_NODES.labels(kind="users").set(len(self.users))
        metrics.GRAPH_NODES.labels(kind="items").set(len(self.items))
        metrics.GRAPH_EDGES.set(self.n_edges)

    def _embed_texts(self, items: dict[int, str], profiles: dict[int, str], comments: dict[int, int]) -> None:
        """Encode every new text of the batch in ONE encoder call."""
        texts: list[str] = list(items.values()) + list(profiles.values())
        com_rows: list[tuple[int, int]] = []  # (user row, number of trailing comments)
        for row, n in comments.items():
            st = self.activity[self.users.id(row)]
            n = min(n, len(st.comments))
            com_rows.append((row, n))
            texts.extend(c[1] for c in st.comments[len(st.comments) - n :])
        if not texts:
            return
        uniq = list(dict.fromkeys(texts))
        emb = self.encoder.encode(uniq).to(self.device, torch.float32)  # (T, D)
        metrics.TEXTS_ENCODED.inc(len(uniq))
        pos = {t: i for i, t in enumerate(uniq)}
        if items:
            rows = torch.tensor(list(items), dtype=torch.long, device=self.device)
            self.item_emb[rows] = emb[[pos[t] for t in items.values()]]
        for row, text in profiles.items():
            self.profile_emb[row] = emb[pos[text]]
            self.has_profile[row] = True
        for row, n in com_rows:
            st = self.activity[self.users.id(row)]
            new = emb[[pos[c[1]] for c in st.comments[len(st.comments) - n :]]] if n else emb[:0]
            old = self._comment_emb.get(row)
            keep = len(st.comments) - n
            if old is not None and keep > 0:
                new = torch.cat([old[old.shape[0] - keep :], new], 0)
            self._comment_emb[row] = new

    def _rebuild_eng_rows(self, rows: Sequence[int]) -> int:
        """Refresh the padded (U, R) engagement arrays of these users from their activity state.

        Engagements with items not in the catalogue (a table value read back without its item's)
        are left out of the arrays, not of the state; returns how many were.
        """
        if not rows:
            return 0
        r = self.eng_item.shape[1]
        item_rows: list[int] = []
        vals: list[tuple[float, float, int]] = []
        lens = []
        unknown = 0
        for row in rows:
            rec = self.activity[self.users.id(row)].recent
            irows = self.items.rows_or_missing(rec)
            rvals = list(rec.values())
            if -1 in irows:
                keep = [j for j, x in enumerate(irows) if x >= 0]
                unknown += len(irows) - len(keep)
                irows, rvals = [irows[j] for j in keep], [rvals[j] for j in keep]
            n = min(len(irows), r)
            item_rows.extend(irows[len(irows) - n :])
            vals.extend(rvals[len(rvals) - n :])
            lens.append(n)
        rr = np.asarray(rows, np.int64)
        self.eng_item[rr] = -1
        self.eng_w[rr] = 0.0
        self.eng_ts[rr] = 0.0
        self.eng_kind[rr] = 0
        if not item_rows:
            return unknown
        ln = np.asarray(lens, np.int64)
        ri = np.repeat(rr, ln)
        ci = np.arange(len(item_rows), dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
        a = np.array(vals, np.float64)  # (N, 3) weight, ts, kinds
        self.eng_item[ri, ci] = item_rows
        self.eng_w[ri, ci] = a[:, 0]
        self.eng_ts[ri, ci] = a[:, 1]
        self.eng_kind[ri, ci] = a[:, 2]
        return unknown

    def _recompute_interest(self, rows: np.ndarray) -> None:
        """interest(u) for the given user rows (see the module docstring), batched."""
        s = self.settings
        hl = s.interest_half_life_s
        dev = self.device
        items = self.eng_item[rows]  # (B, R)
        valid = items >= 0
        anchor = self.user_last_ts[rows]  # (B,) the user's latest event time
        age = np.maximum(anchor[:, None] - self.eng_ts[rows], 0.0)
        coef = np.where(valid, self.eng_w[rows] * np.exp2(-age / hl), 0.0)
        bi, ri = np.nonzero(valid & (coef != 0))  # row-major: grouped by user, as CSR wants
        counts = np.bincount(bi, minlength=len(rows))
        vec = _csr_mm(counts, items[bi, ri], coef[bi, ri], len(self.items), self.item_emb[: len(self.items)])
        rows_t = torch.from_numpy(rows).to(dev)
        prof = torch.from_numpy(self.has_profile[rows].astype(np.float32)).to(dev)
        vec += (s.profile_weight * prof)[:, None] * self.profile_emb[rows_t]
        owners: list[int] = []
        weights: list[float] = []
        embs: list[Tensor] = []
        for b, row in enumerate(rows.tolist()):
            ce = self._comment_emb.get(row)
            if ce is not None and ce.shape[0]:
                st = self.activity[self.users.id(row)]
                t_u = float(anchor[b])
                for c_ in st.comments[-ce.shape[0] :]:
                    owners.append(b)
                    weights.append(0.5 * c_[3] * 2.0 ** (-max(t_u - c_[2], 0.0) / hl))
                embs.append(ce)
        if embs:
            w_t = torch.tensor(weights, dtype=torch.float32, device=dev)
            vec.index_add_(0, torch.tensor(owners, device=dev), torch.cat(embs) * w_t[:, None])
        vec = _normalise(vec)
        self.interest[rows_t] = vec
        self.has_interest[rows] = (vec.abs().sum(dim=1) > 0).cpu().numpy()

    def _csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Follow graph as CSR: (followee indptr, indices, follower indptr, indices); rebuilt on change."""
        nu = len(self.users)
        c = self._csr_cache
        if c is not None and c[0].shape[0] == nu + 1:
            return c
        arrs = [self._fol_arr(r) for r in range(nu)]
        lens = np.fromiter((a.shape[0] for a in arrs), np.int64, nu)
        indptr = np.zeros(nu + 1, np.int64)
        np.cumsum(lens, out=indptr[1:])
        indices = np.concatenate(arrs) if int(indptr[-1]) else np.zeros(0, np.int64)
        src = np.repeat(np.arange(nu, dtype=np.int64), lens)
        order = np.argsort(indices, kind="stable")
        rindptr = np.zeros(nu + 1, np.int64)
        np.cumsum(np.bincount(indices, minlength=nu), out=rindptr[1:])
        self._csr_cache = (indptr, indices, rindptr, src[order])
        return self._csr_cache

    @staticmethod
    def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``rows``, neighbour) for every neighbour of every row, vectorised."""
        starts = indptr[rows]
        lens = indptr[rows + 1] - starts
        total = int(lens.sum())
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
        if not total:
            return owner, np.zeros(0, np.int64)
        offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        return owner, indices[np.repeat(starts, lens) + offs]

    def _pairs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``rows``, followee row) for each followee of each (known, >= 0) row."""
        indptr, indices, _, _ = self._csr()
        return self._gather(indptr, indices, np.asarray(rows, np.int64))

    def _followers_of(self, rows: np.ndarray) -> np.ndarray:
        _, _, rindptr, rindices = self._csr()
        return np.unique(self._gather(rindptr, rindices, np.asarray(rows, np.int64))[1])

    def _propagate(self, interest_changed: Iterable[int], follow_changed: Iterable[int]) -> None:
        """Recompute the social tower for the affected k-hop neighbourhood only."""
        layers = self.hops.shape[0]
        frontier = np.fromiter(interest_changed, np.int64)
        fc = np.fromiter(follow_changed, np.int64)
        affected: list[np.ndarray] = []
        for k in range(layers):
            rows = np.union1d(self._followers_of(frontier), fc) if frontier.size else np.unique(fc)
            if not rows.size:
                break
            self._hop(k, rows)
            affected.append(rows)
            frontier = rows
        if affected:
            self._social_vec(np.unique(np.concatenate(affected)))

    def _hop(self, k: int, rows: np.ndarray) -> None:
        """h_k(rows) = mean over followees of h_{k-1}, as one sparse (rows x U) @ (U, D) product."""
        nu = len(self.users)
        src = (self.interest if k == 0 else self.hops[k - 1])[:nu]
        owner, fol = self._pairs(rows)
        cnt = np.bincount(owner, minlength=len(rows))
        vals = (1.0 / np.maximum(cnt, 1))[owner].astype(np.float32)
        self.hops[k, torch.from_numpy(rows).to(self.device)] = _csr_mm(cnt, fol, vals, nu, src)

    def _social_vec(self, rows: np.ndarray) -> None:
        rt = torch.from_numpy(rows).to(self.device)
        acc = self.hops[0].index_select(0, rt)  # (B, D)
        for k in range(1, self.hops.shape[0]):
            acc.add_(self.hops[k].index_select(0, rt), alpha=0.5**k)
        self.social_vec.index_copy_(0, rt, _normalise(acc))

    # ------------------------------------------------------------------ ANN
    def _ann_add(self) -> None:
        n = len(self.items)
        if n <= self.settings.ann_threshold:
            return
        import faiss

        if self._ann is None or self._ann_stale:
            self._ann = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            self._ann_n = 0
            self._ann_stale = False
        if n > self._ann_n:
            x = self.item_emb[self._ann_n : n].detach().float().cpu().numpy()
            self._ann.add(np.ascontiguousarray(x))
            self._ann_n = n
        metrics.ANN_ITEMS.set(self._ann_n)

    # ------------------------------------------------------------------ scoring
    def _user_vectors(self, rows: np.ndarray) -> Tensor:
        """q(u) (B, D); zero rows for unknown users (row -1)."""
        b = len(rows)
        q = torch.zeros(b, self.dim, device=self.device)
        known = rows >= 0
        if known.any():
            kr = torch.from_numpy(rows[known]).to(self.device)
            v = self.interest[kr] + self.settings.zs_weight_social_tower * self.social_vec[kr]
            q[torch.from_numpy(np.nonzero(known)[0]).to(self.device)] = _normalise(v)
        return q

    def _candidates(self, now: float, q: Tensor, rows: np.ndarray) -> np.ndarray:
        s = self.settings
        n = len(self.items)
        ts = self.item_ts[:n]
        live = ts >= now - s.item_ttl_s
        if n <= s.ann_threshold or self._ann is None:
            return np.nonzero(live)[0]
        pool = [np.nonzero(live & (ts >= now - s.fresh_window_s))[0]]
        qn = q.detach().float().cpu().numpy()
        has = np.abs(qn).sum(1) > 0
        if has.any():
            _, nn_idx = self._ann.search(np.ascontiguousarray(qn[has]), min(s.ann_candidates, self._ann_n))
            pool.append(nn_idx[nn_idx >= 0].ravel())
        _, fol = self._pairs(rows[rows >= 0])
        if fol.size:
            it = self.eng_item[fol].ravel()
            pool.append(it[it >= 0])
        cand = np.unique(np.concatenate(pool))
        return cand[live[cand]]

    def _popularity(self, now: float, cand: np.ndarray) -> np.ndarray:
        nu = len(self.users)
        items = self.eng_item[:nu]
        w_all = self.eng_w[:nu]
        ok = (items >= 0) & (w_all > 0)
        age = np.maximum(now - self.eng_ts[:nu][ok], 0.0)
        w = w_all[ok] * np.exp2(-age / self.settings.popularity_half_life_s)
        pop = np.bincount(items[ok], weights=w, minlength=len(self.items))
        top = pop.max() if pop.size else 0.0
        if top <= 0:
            return np.zeros(len(cand), np.float32)
        return (np.log1p(pop[cand]) / math.log1p(top)).astype(np.float32)

    def _item_vecs(self, rows: np.ndarray) -> Tensor:
        """item_emb rows, shaped like ``rows`` (a view when they are 0..n-1, the whole live catalogue)."""
        flat = rows.reshape(-1)
        n = flat.shape[0]
        if rows.ndim == 1 and n and flat[0] == 0 and flat[-1] == n - 1 and (n == 1 or bool((np.diff(flat) == 1).all())):
            return self.item_emb[:n]
        # index_select, not item_emb[tensor]: advanced indexing took twice as long here
        out = self.item_emb.index_select(0, torch.from_numpy(flat).to(self.device))  # (N, D)
        return out.view(*rows.shape, self.dim)

    def _buf(self, name: str, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """A reusable flat workspace: large per-call temporaries would page-fault on every batch."""
        t = self._bufs.get(name)
        if t is None or t.numel() < n or t.dtype != dtype:
            t = self._bufs[name] = torch.empty(max(n, 1 << 16), dtype=dtype, device=self.device)
        return t[:n]

    def _social_keys(self, rows: np.ndarray, cand: np.ndarray, now: float) -> tuple[Tensor, Tensor, Tensor]:
        """Followees' positive engagements with candidates: flat key b*C+pos, decayed weight, 1+4096*liked.

        Work is proportional to the engagements actually reached (a CSR gather), not to users x items.
        """
        c = len(cand)
        known = np.nonzero(rows >= 0)[0]
        owner_k, fol = self._pairs(rows[known])
        dev = self.device
        if not fol.size:
            e = torch.zeros(0, device=dev)
            return e.long(), e, e
        items = self.eng_item[fol]  # (P, R)
        pi, ri = np.nonzero((items >= 0) & (self.eng_w[fol] > 0))
        fr = fol[pi]
        pos_of = np.full(len(self.items), -1, np.int64)
        pos_of[cand] = np.arange(c)
        pos = pos_of[items[pi, ri]]
        keep = pos >= 0
        pi, ri, fr, pos = pi[keep], ri[keep], fr[keep], pos[keep]
        key = known[owner_k][pi] * c + pos
        age = np.maximum(now - self.eng_ts[fr, ri], 0.0)
        dec = self.eng_w[fr, ri] * np.exp2(-age / self.settings.interest_half_life_s)
        tag = 1.0 + 4096.0 * ((self.eng_kind[fr, ri] & K_LIKE) > 0)  # count and like-count in one sum
        return (
            torch.from_numpy(key).to(dev),
            torch.from_numpy(dec.astype(np.float32)).to(dev),
            torch.from_numpy(tag.astype(np.float32)).to(dev),
        )

    def _mask_keys(self, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Flat b*C+pos of filtered pairs: items the user engaged with, the user's own items."""
        c = len(cand)
        pos_of = np.full(len(self.items), -1, np.int64)
        pos_of[cand] = np.arange(c)
        known = np.nonzero(rows >= 0)[0]
        parts = []
        seen = [self._seen_arr(int(rows[bi])) for bi in known]
        if seen:
            lens = np.fromiter((a.shape[0] for a in seen), np.int64, len(seen))
            if lens.sum():
                sp = pos_of[np.concatenate(seen)]
                sb = np.repeat(known, lens)
                ok = sp >= 0
                parts.append(sb[ok] * c + sp[ok])
        authors = self.item_author[cand]
        order = np.argsort(authors, kind="stable")
        sorted_a = authors[order]
        lo = np.searchsorted(sorted_a, rows[known], "left")
        hi = np.searchsorted(sorted_a, rows[known], "right")
        indptr = np.concatenate([[0], np.cumsum(hi - lo)])
        if indptr[-1]:
            own_b, own_j = self._gather(
                indptr,
                np.concatenate([order[x:y] for x, y in zip(lo, hi, strict=True)]),
                np.arange(len(known)),
            )
            parts.append(known[own_b] * c + own_j)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _score(
        self, rows: np.ndarray, q: Tensor, now: float, k: int, query_vec: Tensor | None = None
    ) -> _Top:
        """Top-k per user with the evidence behind each pick; candidates and filters shared by all scorers.

        ``query_vec`` (B, D): the words of a query per user; they decide what matches and the
        personal score only reorders within (``service/queries.py``).
        """
        s = self.settings
        b = len(rows)
        cand = self._candidates(now, q if query_vec is None else query_vec, rows)
        c = len(cand)
        kk = min(k, c)
        if kk == 0 or b == 0:
            return _Top.empty(b)
        dev = self.device
        x = self._item_vecs(cand)  # (C, D)
        text = torch.mm(q, x.T, out=self._buf("text", b * c).view(b, c))  # (B, C) cosine
        key, dec, tag = self._social_keys(rows, cand, now)
        # exp(-sum of followees' decayed weights) per (user, item): 1 where no followee engaged
        damp = self._buf("raw", b * c).zero_().index_add_(0, key, dec).neg_().exp_()  # (B*C,)
        tags = self._buf("tags", b * c).zero_().index_add_(0, key, tag)
        pop = torch.from_numpy(self._popularity(now, cand)).to(dev)  # (C,)
        fused = self._fused_scores(rows, cand, now) if self.model is not None else None
        if fused is not None:
            score = fused.float().contiguous()  # (B, C)
        else:
            score = torch.mul(text, s.zs_weight_text, out=self._buf("score", b * c).view(b, c))
            score.add_(pop[None, :], alpha=s.zs_weight_popularity)
            score.add_(damp.view(b, c), alpha=-s.zs_weight_social).add_(s.zs_weight_social)  # + w_s * proof
        mask = self._mask_keys(rows, cand)
        if query_vec is not None:
            allowed = torch.ones(b * c, dtype=torch.bool, device=dev)
            allowed[torch.from_numpy(mask).to(dev)] = False
            rule = QueryRule(s.query_match_band, s.query_history_weight, s.query_match_floor)
            score, _ = query_scores(torch.mm(query_vec, x.T), score, allowed.view(b, c), rule)
        # equal scores (e.g. identical texts) rank by id, not by row order, so a restart ranks the same
        score.add_(torch.from_numpy(self.item_tb[cand]).to(dev)[None, :], alpha=_TIE)
        if mask.size:
            score.view(-1).index_fill_(0, torch.from_numpy(mask).to(dev), _NEG)
        top_s, top_i = torch.topk(score, kk, dim=1)
        flat = (torch.arange(b, device=dev)[:, None] * c + top_i).reshape(-1)
        ti = top_i.cpu().numpy()  # (B, k) positions in cand
        ts_np = top_s.float().cpu().numpy()
        tg = tags[flat].reshape(b, kk).cpu().numpy().astype(np.int64)
        valid = ts_np > _NEG / 2
        return _Top(
            rows=np.where(valid, cand[ti], -1),
            score=ts_np,
            c_text=s.zs_weight_text * text.reshape(-1)[flat].reshape(b, kk).cpu().numpy(),
            c_social=s.zs_weight_social * (1.0 - damp[flat]).reshape(b, kk).cpu().numpy(),
            c_pop=s.zs_weight_popularity * pop.cpu().numpy()[ti],
            n_eng=(tg % 4096).astype(np.int32),
            n_like=(tg // 4096).astype(np.int32),
        )

    def _fused_scores(self, rows: np.ndarray, cand: np.ndarray, now: float) -> Tensor | None:
        """Scores (B, C) from the loaded model, for the users' own interest vectors."""
        fn = getattr(self.model, "score_users_items", None)
        if fn is None:
            return None
        return fn(self, rows, cand, now)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ reasons
    def _item_words(self, row: int) -> frozenset[str]:
        w = self._item_text_words.get(row)
        if w is None:
            st = self.item_state[self.items.id(row)]
            w = frozenset(_words(st.text + " " + " ".join(t.replace("-", " ") for t in st.tags)))
            self._item_text_words[row] = w
        return w

    def _similar(
        self, rows: np.ndarray, top: np.ndarray, need: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each pick, the user's most similar of their last few positive engagements:
        (sim, item row, kinds), each (B, k). Only users with ``need`` (B,) are computed."""
        b, k = top.shape
        best_sim = np.full((b, k), -2.0, np.float32)
        best_item = np.full((b, k), -1, np.int64)
        best_kind = np.zeros((b, k), np.int8)
        sel = np.nonzero(need & (rows >= 0))[0]
        if not sel.size or k == 0:
            return best_sim, best_item, best_kind
        urow = rows[sel]
        n_valid = (self.eng_item[urow] >= 0).sum(axis=1)  # entries fill [0, n): most recent last
        last = min(_SIMILAR_LAST, self.eng_item.shape[1])
        cols = np.maximum(n_valid[:, None] - last + np.arange(last)[None, :], 0)  # (S, last)
        eng = np.take_along_axis(self.eng_item[urow], cols, 1)
        kinds = np.take_along_axis(self.eng_kind[urow], cols, 1)
        ok = (eng >= 0) & (np.take_along_axis(self.eng_w[urow], cols, 1) > 0)
        ok &= cols < n_valid[:, None]
        if not ok.any():
            return best_sim, best_item, best_kind
        dev = self.device
        xt = self._item_vecs(np.maximum(top[sel], 0))  # (S, k, D)
        xe = self._item_vecs(np.maximum(eng, 0))  # (S, last, D)
        sim = torch.bmm(xt, xe.transpose(1, 2))  # (S, k, last)
        sim = sim.masked_fill(~torch.from_numpy(ok).to(dev)[:, None, :], -2.0)
        bs, j = sim.max(dim=2)
        jn = j.cpu().numpy()
        best_sim[sel] = bs.float().cpu().numpy()
        best_item[sel] = np.take_along_axis(eng, jn, 1)
        best_kind[sel] = np.take_along_axis(kinds, jn, 1)
        return best_sim, best_item, best_kind

    def _reasons(self, rows: np.ndarray, top: _Top) -> list[list[str]]:
        """Reasons from the evidence that contributed most; strings cached (stable wording)."""
        k = top.rows.shape[1]
        # followed users' likes are the most persuasive evidence; only public acts are cited: a
        # followee's click or view is private and never revealed (it still counts in the score)
        social = top.n_like > 0
        textual = ~social & (top.c_text >= top.c_pop) & (top.c_text > 0) & (top.rows >= 0)
        sim, sim_item, sim_kind = self._similar(rows, top.rows, np.asarray(textual.any(axis=1)))
        similar = textual & (sim >= 0.5) & (sim_item >= 0)
        # one evidence code per pick, decided in numpy; the loop below only picks strings
        code = np.where(social, 1, np.where(similar, 2, np.where(textual, 3, np.where(top.c_pop > 0, 4, 5))))
        code = np.where(top.rows >= 0, code, 0).tolist()
        n_like = top.n_like.tolist()
        sim_item_l = sim_item.tolist()
        sim_liked = ((sim_kind & K_LIKE) > 0).tolist()
        top_rows = top.rows.tolist()
        uid = self.users.id
        out: list[list[str]] = []
        for bi, row in enumerate(rows.tolist()):
            st = self.activity.get(uid(row)) if row >= 0 else None
            prof: frozenset[str] | None = None
            rs: list[str] = []
            codes = code[bi]
            for j in range(k):
                c = codes[j]
                if c == 0:
                    break
                if c == 1:
                    rs.append(_count_reason("liked by", n_like[bi][j]))
                elif c == 2:
                    rs.append(self._similar_reason(sim_item_l[bi][j], sim_liked[bi][j]))
                elif c == 3:
                    if prof is None:
                        prof = frozenset(_words(st.profile)) if st is not None and st.profile else frozenset()
                    if prof:
                        common = sorted(self._item_words(top_rows[bi][j]) & prof)[:3]
                        rs.append(
                            "matches your interests: " + ", ".join(common)
                            if common
                            else "matches your interests"
                        )
                    elif st is None or not st.recent:
                        rs.append("matches what people you follow like")
                    else:
                        rs.append("matches your interests")
                else:
                    rs.append("popular now" if c == 4 else "new")
            out.append(rs)
        return out

    def _similar_reason(self, item_row: int, liked: bool) -> str:
        key = (item_row, liked)
        r = self._sim_reason_cache.get(key)
        if r is None:
            text = self.item_state[self.items.id(item_row)].text
            r = self._sim_reason_cache[key] = (
                f'similar to "{_cut(text)}" you {"liked" if liked else "viewed"}'
            )
        return r

    # ------------------------------------------------------------------ public scoring API
    def _rows_of(self, user_ids: Sequence[UserId]) -> np.ndarray:
        get = self.users.get
        return np.fromiter((get(u, -1) for u in user_ids), np.int64, len(user_ids))

    def recommend_many(
        self,
        user_ids: Sequence[UserId],
        now: float | None = None,
        source_event_ids: Mapping[UserId, str] | None = None,
        who_to_follow: bool | Collection[UserId] = True,
    ) -> list[dict[str, Any]]:
        """``recommendations`` payloads: kind "items" per user, then kind "users" for ``who_to_follow``
        (True = every user, a collection = those of ``user_ids`` in it, False = none)."""
        self._apply_pending_model()
        if not user_ids:
            return []
        user_ids = list(dict.fromkeys(user_ids))
        now_ = self._clock(now)
        src = source_event_ids or {}
        rows = self._rows_of(user_ids)
        wall = time.time()
        with metrics.stage("score"):
            q = self._user_vectors(rows)
            top = self._score(rows, q, now_, self.settings.top_k)
            reasons = self._reasons(rows, top)
            if who_to_follow is True or who_to_follow is False:
                wtf_mask = np.full(len(user_ids), bool(who_to_follow))
            else:
                wanted = set(who_to_follow)
                wtf_mask = np.fromiter((u in wanted for u in user_ids), bool, len(user_ids))
            users: list[list[dict[str, Any]]] | None = None
            if wtf_mask.any() and self.settings.who_to_follow_k:
                sel = np.nonzero(wtf_mask)[0]
                got = self._who_to_follow(rows[sel], q[torch.from_numpy(sel).to(self.device)])
                users = [[] for _ in user_ids]
                for j, bi in enumerate(sel.tolist()):
                    users[bi] = got[j]
            ids = self.items.id
            scores = np.round(top.score.astype(np.float64), 6).tolist()
            top_rows = top.rows.tolist()
            out: list[dict[str, Any]] = []
            for bi, uid in enumerate(user_ids):
                rs = reasons[bi]
                r_rows, r_sc = top_rows[bi], scores[bi]
                items = [{"id": ids(r_rows[j]), "score": r_sc[j], "reason": rs[j]} for j in range(len(rs))]
                self._last_recs[uid] = frozenset(i["id"] for i in items)
                out.append(self._payload(uid, wall, "items", items, src.get(uid)))
                if users is not None and wtf_mask[bi]:
                    out.append(self._payload(uid, wall, "users", users[bi], src.get(uid)))
            while len(self._last_recs) > 200_000:
                self._last_recs.popitem(last=False)
        return out

    def _payload(
        self, uid: str, wall: float, kind: str, items: list[dict[str, Any]], source: str | None
    ) -> dict[str, Any]:
        return {
            "user_id": uid,
            "ts": wall,
            "model_version": self.model_version,
            "kind": kind,
            "items": items,
            "source_event_id": source,
            "rec_id": rec_id(source, uid, kind, (str(i["id"]) for i in items)),
            "schema_version": SCHEMA_VERSION,
        }

    def _who_to_follow(self, rows: np.ndarray, q: Tensor) -> list[list[dict[str, Any]]]:
        """Friends-of-friends and similar users; never self, already followed or unfollowed users."""
        b, nu = len(rows), len(self.users)
        k = min(self.settings.who_to_follow_k, nu)
        if nu == 0 or k == 0:
            return [[] for _ in range(b)]
        sim = (q @ self.interest[:nu].T).float().cpu().numpy()  # (B, U)
        mutual = np.zeros((b, nu), np.int32)
        known = np.nonzero(rows >= 0)[0]
        owner_k, fol = self._pairs(rows[known])
        owner = known[owner_k]
        if fol.size:
            o2, fof = self._pairs(fol)
            if fof.size:
                mutual = np.bincount(owner[o2] * nu + fof, minlength=b * nu).reshape(b, nu).astype(np.int32)
        score = 0.5 * sim + 0.5 * (1.0 - np.exp(-mutual / 2.0)) + _TIE * self.user_tb[:nu][None, :]
        bad = (mutual == 0) & ~self.has_interest[:nu][None, :]
        bad |= score <= 0.05
        bad[known, rows[known]] = True
        bad[owner, fol] = True
        for bi in known.tolist():
            unf = self._unfollowed_arr(int(rows[bi]))
            if unf.size:
                bad[bi, unf] = True
        score = np.where(bad, _NEG, score)
        top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < nu else np.tile(np.arange(nu), (b, 1))
        top_sc = np.take_along_axis(score, top, 1)
        order = np.argsort(-top_sc, axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        top_sc = np.round(np.take_along_axis(top_sc, order, 1), 6)
        top_m = np.take_along_axis(mutual, top, 1)
        uids = self.users.id
        out: list[list[dict[str, Any]]] = []
        for bi in range(b):
            res = []
            for j in range(k):
                sc = float(top_sc[bi, j])
                if sc <= _NEG / 2:
                    break
                m = int(top_m[bi, j])
                reason = _count_reason("followed by", m) if m else "shares your interests"
                res.append({"id": uids(int(top[bi, j])), "score": sc, "reason": reason})
            out.append(res)
        return out

    def answer_queries(self, queries: Sequence[Query], now: float | None = None) -> list[dict[str, Any]]:
        """kind "query" payloads: the query's words decide what matches, the asker's towers reorder
        within the matches (``service/queries.py``); the same filters as recommendations."""
        self._apply_pending_model()
        if not queries:
            return []
        now_ = self._clock(now)
        wall = time.time()
        with metrics.stage("score"):
            uniq = list(dict.fromkeys(qr.text for qr in queries))
            emb = self.encoder.encode(uniq).to(self.device, torch.float32)  # (T, D)
            pos = {t: i for i, t in enumerate(uniq)}
            rows = self._rows_of([qr.user_id for qr in queries])
            u = self._user_vectors(rows)
            qv = _normalise(emb[[pos[qr.text] for qr in queries]])
            top = self._score(rows, u, now_, self.settings.top_k, query_vec=qv)
        out = []
        ids = self.items.id
        for bi, qr in enumerate(queries):
            qwords = frozenset(_words(qr.text))
            items = []
            for j in range(top.rows.shape[1]):
                r = int(top.rows[bi, j])
                if r < 0:
                    break
                common = sorted(self._item_words(r) & qwords)[:3]
                reason = "matches your request: " + ", ".join(common) if common else "matches your request"
                nl = int(top.n_like[bi, j])
                if nl:
                    reason += "; " + _count_reason("liked by", nl)
                items.append({"id": ids(r), "score": round(float(top.score[bi, j]), 6), "reason": reason})
            out.append(self._payload(qr.user_id, wall, "query", items, qr.event_id))
        return out

    def step(
        self, events: Sequence[Event], now: float | None = None, positions: Sequence[Position | None] | None = None
    ) -> dict[str, Any]:
        """One micro-batch end to end (learn, then score the users it touched and answer its queries),
        as plain data: the worker calls this once per batch, in-process or across a process boundary.
        ``positions``: see ``learn_many``.

        Returns ``rejected`` ([index, reason, detail]), ``table_updates``, ``payloads``, ``applied``,
        ``duplicates`` and ``model_version``.
        """
        result = self.learn_many(events, now=now, positions=positions)
        payloads: list[dict[str, Any]] = []
        if result.touched_users:
            # The event that made each user's list change (their own, or a followee's for social proof).
            sources = result.source_event_ids or {
                ev.user_id: ev.event_id for ev in events if hasattr(ev, "user_id")
            }
            payloads += self.recommend_many(
                result.touched_users,
                now=now,
                source_event_ids={u: sources[u] for u in result.touched_users if u in sources},
                # who-to-follow only where the user's follows/profile moved (cheaper than everyone)
                who_to_follow=result.who_to_follow_users,
            )
        if result.queries:
            payloads += self.answer_queries(result.queries, now=now)
        return {
            "rejected": [[i, str(reason), detail] for i, reason, detail in result.rejected],
            "table_updates": result.table_updates,
            "payloads": payloads,
            "applied": result.applied,
            "duplicates": result.duplicates,
            "model_version": self.model_version,
        }

    # ------------------------------------------------------------------ restore / model swap
    def restore(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild all state and every derived embedding from table contents (replaces current state).

        Never raises on a table value: one that does not parse is left out, and an engagement naming
        an item not in the catalogue is kept in the user's state but left out of the derived state;
        both are counted (``socrec_state_values_skipped_total``) and logged in one line.
        """
        self._reset()
        loaded = load_tables(tables, self.settings.dedup_ids_per_key)
        latest = self.clock
        for iid, st in sorted(loaded.items.items(), key=lambda kv: (kv[1].ts, kv[0])):
            self.item_state[iid] = st
            self._item_row_changed(self._item_row(iid), st)
            latest = max(latest, st.ts)
        for uid, sst in sorted(loaded.social.items()):
            self.social[uid] = sst
            row = self._user_row(uid)
            for t in sst.following:
                self._set_edge(row, t, on=True)
            for t in sst.unfollowed:
                self._user_row(t)
            latest = max(latest, sst.last_ts)
        profiles: dict[int, str] = {}
        comments: dict[int, int] = {}
        for uid, ast in sorted(loaded.activity.items()):
            self.activity[uid] = ast
            row = self._user_row(uid)
            self.user_last_ts[row] = ast.last_ts
            if ast.profile:
                profiles[row] = ast.profile
            if ast.comments:
                comments[row] = len(ast.comments)
            latest = max(latest, ast.last_ts)
        self._advance_clock(latest)
        n_items = len(self.items)
        item_texts = {r: self.item_state[self.items.id(r)].text for r in range(n_items)}
        with metrics.stage("embed"):
            self._embed_texts(item_texts, profiles, comments)
            unknown = self._rebuild_eng_rows([self.users.row(uid) for uid in self.activity])
            all_rows = np.arange(len(self.users), dtype=np.int64)
            self._recompute_interest(all_rows)
            for k in range(self.hops.shape[0]):
                self._hop(k, all_rows)
            self._social_vec(all_rows)
            self._ann_add()
        self._update_graph_gauges()
        attach = getattr(self.model, "attach", None)
        if attach is not None:
            attach(self)  # the model's own graph is derived state too
        self._report_skipped("restore", loaded.malformed, unknown)
        freeze_long_lived()  # the rebuilt state lives long: full collections stop rescanning it

    def _report_skipped(self, where: str, malformed: Mapping[str, list[str]], unknown_items: int) -> None:
        """Count what a rebuild from table values left out, and say so in one log line."""
        for table, bad in malformed.items():
            if bad:
                metrics.STATE_SKIPPED.labels(table=table, reason="malformed").inc(len(bad))
        if unknown_items:
            metrics.STATE_SKIPPED.labels(table="activity", reason="unknown_item").inc(unknown_items)
        n_bad = sum(len(b) for b in malformed.values())
        if n_bad or unknown_items:
            first = next((f"{t} {b[0]}" for t, b in malformed.items() if b), "")
            log.warning(
                "%s left out %d malformed table values and %d engagements naming unknown items%s",
                where, n_bad, unknown_items, f" (first: {first})" if first else "",
            )  # fmt: skip

    def upsert(self, values: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Take over table values another worker wrote (keys of partitions this worker does not own).

        With several workers each applies only its partitions' events, but scoring needs the whole
        graph, catalogue and the neighbours' interests. Every worker reads the others' changelogs
        (``streams.mirror``) and hands the latest full values here: the raw state is replaced, and
        only what it feeds is derived again (texts that changed, engagements, interests, the k-hop
        social tower, the ANN index). A value seen twice changes nothing. Publishes nothing: the
        worker that applied the event scored its users. ``None`` values are ignored (never written).
        """
        self._apply_pending_model()
        loaded = load_tables(values, self.settings.dedup_ids_per_key)
        latest = self.clock
        item_text: dict[int, str] = {}
        retexted: list[int] = []
        profiles: dict[int, str] = {}
        comments: dict[int, int] = {}
        eng_changed: set[int] = set()
        interest_dirty: set[int] = set()
        follow_changed: set[int] = set()
        feed_model = self.model is not None and hasattr(self.model, "learn_batch")
        changes = GraphChanges()
        n = {"items": 0, "social": 0, "activity": 0}
        for iid, ist in loaded.items.items():
            old = self.item_state.get(iid)
            row = self._item_row(iid)
            if old is None or old.text != ist.text:
                item_text[row] = ist.text
                if old is not None:
                    retexted.append(row)
                    self._ann_stale = True
            self.item_state[iid] = ist
            self._item_row_changed(row, ist)
            latest = max(latest, ist.ts)
            n["items"] += 1
        for uid, sst in loaded.social.items():
            old_s = self.social.get(uid)
            row = self._user_row(uid)
            before = old_s.following if old_s is not None else {}
            for t in before:
                if t not in sst.following:
                    self._set_edge(row, t, on=False)
                    changes.follows.append((uid, t, True))
            for t in sst.following:
                if t not in before:
                    self._set_edge(row, t, on=True)
                    changes.follows.append((uid, t, False))
            for t in sst.unfollowed:
                self._user_row(t)
            self.social[uid] = sst
            self._follows_changed(row)
            follow_changed.add(row)
            latest = max(latest, sst.last_ts)
            n["social"] += 1
        for uid, ast in loaded.activity.items():
            old_a = self.activity.get(uid)
            row = self._user_row(uid)
            self.activity[uid] = ast
            self.user_last_ts[row] = ast.last_ts
            if ast.profile and (old_a is None or old_a.profile != ast.profile):
                profiles[row] = ast.profile
            prev = old_a.comments if old_a is not None else []
            if ast.comments != prev:
                # appended at the end (older ones may have dropped off the front): encode the new tail
                # only when the kept head is the old tail, else all of them
                k = next((k for k in range(len(ast.comments), -1, -1) if ast.comments[:k] == prev[len(prev) - k :]), 0)
                ce = self._comment_emb.get(row)
                if k == 0 or ce is None:
                    self._comment_emb.pop(row, None)
                    comments[row] = len(ast.comments)
                elif k == len(ast.comments):  # only dropped from the front
                    self._comment_emb[row] = ce[ce.shape[0] - k :]
                else:
                    comments[row] = len(ast.comments) - k
            if old_a is None or old_a.recent != ast.recent:
                eng_changed.add(row)
                self._seen_rows.pop(row, None)
                if feed_model:
                    was = old_a.recent if old_a is not None else {}
                    for iid, e in ast.recent.items():
                        if iid in self.item_state and (iid not in was or was[iid][0] != e[0]):
                            changes.engaged[(uid, iid)] = e[0]
            interest_dirty.add(row)  # the interest's time anchor (last_ts) moves with any event
            latest = max(latest, ast.last_ts)
            n["activity"] += 1
        self._advance_clock(latest)
        with metrics.stage("embed"):
            self._derive(
                item_text, profiles, comments, eng_changed, interest_dirty, follow_changed, retexted,
                changes if feed_model else None,
            )
        self._update_graph_gauges()
        self._report_skipped("upsert", loaded.malformed, 0)
        return n

    def load_snapshot(self, path: str) -> str:
        """Verify, load and attach the snapshot at ``path`` now, and serve it; returns its version.

        Called between batches (the worker holds the pipeline lock). A refused snapshot (truncated,
        bit-flipped, unreadable, or not servable by this engine) raises ``SnapshotError``, is counted
        in ``socrec_snapshot_rejected_total{reason}``, and the old model keeps serving.
        """
        from socrec_online.service.fused import FusedScorer
        from socrec_online.snapshot import SnapshotError, SnapshotErrorReason

        p = Path(path)
        if p.name == self.model_version and self._pending is None:
            return self.model_version  # announced twice (a replayed model-updates record)
        try:
            scorer = FusedScorer.load(p, encoder=self.encoder)
            scorer.attach(self)
        except SnapshotError as e:
            metrics.SNAPSHOT_REJECTED.labels(reason=e.reason.value).inc()
            metrics.MODEL_SWAPS.labels(outcome="refused").inc()
            log.warning("snapshot refused, still serving %s: %s", self.model_version, e)
            raise
        except (ValueError, KeyError, RuntimeError, OSError) as e:
            metrics.SNAPSHOT_REJECTED.labels(reason="incompatible").inc()
            metrics.MODEL_SWAPS.labels(outcome="refused").inc()
            log.warning("snapshot %s not servable, still serving %s: %s", p, self.model_version, e)
            raise SnapshotError(SnapshotErrorReason.MALFORMED, p, f"not servable: {e}") from None
        self._pending = None  # an older swap_model() must not override this one
        self.model, self.model_version = scorer, p.name
        metrics.MODEL_SWAPS.labels(outcome="ok").inc()
        metrics.set_model_version(p.name)
        metrics.SNAPSHOT_LAST_SUCCESS.set(time.time())
        return p.name

    def swap_model(self, model: Any | None, version: str) -> None:
        """Serve ``model`` (None = zero-shot) from the next call on; in-flight batches finish on the old one."""
        self._pending = (model, version if model is not None else ZERO_SHOT_VERSION)

    def _apply_pending_model(self) -> None:
        if self._pending is None:
            return
        model, version = self._pending
        self._pending = None
        try:
            if model is not None:
                if not callable(getattr(model, "score_users_items", None)):
                    raise TypeError(
                        f"{type(model).__name__} has no score_users_items(engine, rows, cand, now)"
                    )
                prepare = getattr(model, "attach", None)
                if prepare is not None:
                    prepare(self)
        except Exception:  # a bad snapshot must not take serving down: keep the old model
            log.exception("model %s failed to attach; still serving %s", version, self.model_version)
            metrics.MODEL_SWAPS.labels(outcome="failed").inc()
            return
        self.model, self.model_version = model, version
        metrics.MODEL_SWAPS.labels(outcome="ok").inc()
        metrics.set_model_version(version)


def _load_current_model(settings: Settings, encoder: TextEncoderLike) -> tuple[Any | None, str]:
    """The promoted snapshot's serving model, or (None, zero-shot) when none is usable."""
    try:
        from socrec_online import snapshot
    except ImportError:
        return None, ZERO_SHOT_VERSION
    root = Path(settings.snapshot_dir)
    try:
        version = snapshot.current(root) if root.exists() else None
    except Exception:
        log.exception("cannot read the current snapshot pointer in %s; serving zero-shot", root)
        return None, ZERO_SHOT_VERSION
    if version is None:
        return None, ZERO_SHOT_VERSION
    loader = _fused_loader()
    if loader is None:
        log.warning("snapshot %s present but no fused serving API is installed; serving zero-shot", version)
        return None, ZERO_SHOT_VERSION
    try:
        return loader(root / version, settings, encoder), version
    except Exception:
        log.exception("snapshot %s could not be loaded; serving zero-shot", version)
        metrics.SNAPSHOT_REJECTED.labels(reason="load_failed").inc()
        return None, ZERO_SHOT_VERSION


def _fused_loader() -> Callable[..., Any] | None:
    try:
        from socrec_online.service.fused import FusedScorer
    except ImportError:
        return None

    def load(path: Path, settings: Settings, encoder: TextEncoderLike) -> Any:
        return FusedScorer.load(path, encoder=encoder)

    return load

"""The service engine: events in, state and embeddings updated incrementally, recommendations out.

Pure library (no Kafka): a stream agent decodes a micro-batch, calls :meth:`Engine.learn_many`,
writes ``table_updates`` to its tables and publishes :meth:`Engine.recommend_many` for the
touched users. After a restart, :meth:`Engine.restore` rebuilds everything from the tables.

The engine is its public methods over parts, one concern each:

* ``store``: raw state (table values) and the row-aligned arrays derived from it (``service/store.py``)
* ``apply``: one function per event type over a shared ``BatchDelta`` (``service/apply.py``);
  ``upsert`` and ``restore`` fill the same from table values (``service/tables_in.py``)
* ``derive``: text vectors, interests, the k-hop social tower, formulas there (``service/derive.py``)
* ``upkeep``: the store and the parts over it, and the verbs that rewrite the state other than
  by events: restore, upsert, the retention sweep and the compaction (``service/upkeep.py``,
  rules in ``service/retention.py``)
* the ANN index (``service/ann.py``), candidates, filters and evidence (``service/candidates.py``),
  scoring (``service/scoring.py``), reasons (``service/reasons.py``), who-to-follow
  (``service/who_to_follow.py``), the serving-model slot (``service/model_slot.py``) and what
  each user was last shown, for the online hit ratio (``service/shown.py``).

Zero-shot model (``model_version == "zero-shot"``) until a snapshot is loaded; then the score is
the fused head's logit (``service/fused.py``) and the candidates, filters and reasons stay.

Not thread-safe: one engine per worker, called from one thread at a time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from socrec_online import metrics
from socrec_online.devices import resolve_device, service_text_dtype, set_service_torch_threads
from socrec_online.events import Event, Query
from socrec_online.idmap import IdMap
from socrec_online.service.ann import AnnIndex
from socrec_online.service.apply import apply_event, fan_out, table_updates
from socrec_online.service.arrays import normalise
from socrec_online.service.batch import BatchDelta, BatchResult, GraphChanges
from socrec_online.service.model_slot import ModelSlot, load_current_model
from socrec_online.service.protocols import ServingModel, TextEncoderLike
from socrec_online.service.reasons import Reasons, words
from socrec_online.service.rec_id import rec_id
from socrec_online.service.scoring import Scorer
from socrec_online.service.sentiment import vader_sentiment
from socrec_online.service.shown import ShownLists
from socrec_online.service.state import ActivityState, ItemState, Position, SocialState
from socrec_online.service.store import Store
from socrec_online.service.upkeep import Upkeep
from socrec_online.service.who_to_follow import users_to_follow
from socrec_online.settings import Settings
from socrec_online.types import SCHEMA_VERSION, ZERO_SHOT_VERSION, ItemId, UserId

__all__ = [
    "BatchResult",
    "Engine",
    "TextEncoderLike",
    "service_text_dtype",
    "set_service_torch_threads",
    "vader_sentiment",
]


class Engine:
    TABLES: ClassVar[tuple[str, ...]] = ("social", "items", "activity")

    def __init__(
        self,
        settings: Settings,
        text_encoder: TextEncoderLike,
        model: ServingModel | None = None,
        model_version: str = ZERO_SHOT_VERSION,
        sentiment: Callable[[str], float] | None = None,
    ) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.encoder = text_encoder
        self.dim = int(text_encoder.dim)
        self.sentiment = sentiment or vader_sentiment()
        self.slot = ModelSlot(model, model_version)  # a given model attaches on the first call
        self.shown = ShownLists()
        self.upkeep = Upkeep(settings, text_encoder, self.device, self.slot, forget=self.shown.forget)
        metrics.set_model_version(self.model_version)

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
        model, version = load_current_model(settings, encoder)
        return cls(settings, encoder, model=model, model_version=version)

    # ------------------------------------------------------------------ state, read-only views
    @property
    def store(self) -> Store:
        """Raw state and the row-aligned arrays (a restore or compaction replaces it: read it anew)."""
        return self.upkeep.store

    @property
    def ann(self) -> AnnIndex:
        return self.upkeep.ann

    @property
    def scorer(self) -> Scorer:
        return self.upkeep.scorer

    @property
    def reasons(self) -> Reasons:
        return self.upkeep.reasons

    @property
    def model(self) -> ServingModel | None:
        return self.slot.model

    @property
    def model_version(self) -> str:
        return self.slot.version

    @property
    def next_model_version(self) -> str:
        """The version served from the next call on (a pending ``swap_model``'s, else the current)."""
        return self.slot.next_version

    @property
    def clock(self) -> float:
        """The event-time clock (freshness, TTL, decay): the latest event time applied."""
        return self.store.clock

    @property
    def items(self) -> IdMap:
        return self.store.items

    @property
    def users(self) -> IdMap:
        return self.store.users

    @property
    def item_state(self) -> dict[ItemId, ItemState]:
        return self.store.item_state

    @property
    def social(self) -> dict[UserId, SocialState]:
        return self.store.social

    @property
    def activity(self) -> dict[UserId, ActivityState]:
        return self.store.activity

    @property
    def n_edges(self) -> int:
        return self.store.n_edges

    def knows_item(self, item_id: str | None) -> bool:
        return item_id in self.store.item_state

    def stats(self) -> dict[str, int]:
        st = self.store
        return {  # evicted keys not counted (their rows wait for a compaction)
            "users": len(st.users) - len(st.dead_users),
            "items": len(st.item_state),
            "edges": st.n_edges,
            "profiles": sum(1 for a in st.activity.values() if a.profile),
            "ann_items": self.ann.n,
        }

    # ------------------------------------------------------------------ reads (the HTTP API)
    def recommend_now(self, user_id: str, kind: Literal["items", "users"] = "items") -> dict[str, Any] | None:
        """One user's list of ``kind`` scored now (source_event_id None), or None for a user the engine
        does not know (or evicted). A read: the list is not remembered as shown (the online hit ratio
        counts what was published), and nothing else the worker keeps or publishes changes."""
        if not self.store.knows_user(user_id):
            return None
        shown = self.shown.last(user_id)
        payloads = self.recommend_many([user_id], who_to_follow=kind == "users")
        self.shown.put_back(user_id, shown)
        return next(p for p in payloads if p["kind"] == kind)

    def answer_now(self, user_id: str, text: str, k: int | None = None) -> dict[str, Any] | None:
        """A kind "query" payload for ``text`` asked by ``user_id`` (at most ``k`` items), or None for
        a user the engine does not know. A read like ``recommend_now``: no event, no state change."""
        if not self.store.knows_user(user_id):
            return None
        payload = self.answer_queries([Query(event_id="", user_id=user_id, ts=self.clock, text=text)])[0]
        items = payload["items"][:k] if k is not None else payload["items"]
        ids = (str(i["id"]) for i in items)
        return {**payload, "items": items, "source_event_id": None, "rec_id": rec_id(None, user_id, "query", ids)}

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
        When the clock passes the next retention sweep (``expire``), the keys it evicts come back
        in ``table_updates`` as None (deletions).
        """
        st = self.store
        self.slot.apply_pending(st)
        if now is not None:
            st.clock = max(st.clock, float(now))
        d = BatchDelta(latest=st.clock, changes=GraphChanges() if self.slot.learns_batches else None)
        with metrics.stage("graph"):
            for idx, ev in enumerate(events):
                apply_event(st, d, ev, idx, positions[idx] if positions is not None else None, self.sentiment)
        st.advance_clock(d.latest)
        for uid, item in d.clicks:
            self.shown.clicked(uid, item)
        with metrics.stage("embed"):
            for u in d.act_keys:
                st.user_last_ts[st.users.row(u)] = st.activity[u].last_ts
            self.upkeep.derive(d)
        res = d.result
        fan_out(st, d, self.settings.fanout_max_users)
        res.touched_users = list(d.touched)
        res.source_event_ids = d.touched
        wtf = {st.users.id(r) for r in d.follow_changed} | {st.users.id(r) for r in d.profiles}
        res.who_to_follow_users = [u for u in d.touched if u in wtf]
        res.table_updates = table_updates(st, d, self.settings.max_table_value_bytes)
        for table, gone in self.upkeep.sweep_if_due().items():
            res.table_updates.setdefault(table, {}).update(gone)
        for (topic, what), n in d.outcomes.items():
            metrics.EVENTS.labels(topic=topic, outcome=what).inc(n)
        wall = time.time()
        for ts in d.fresh_items:
            if 0.0 <= wall - ts < 3600.0:  # live items only; a replayed dataset is not 'late'
                metrics.ITEM_FRESHNESS.observe(wall - ts)
        hit_ratio = self.shown.hit_ratio()
        if hit_ratio is not None:
            metrics.ONLINE_HIT_RATIO.set(hit_ratio)
        self.store.update_graph_gauges()  # a sweep may have compacted the state into a new store
        return res

    # ------------------------------------------------------------------ scoring
    def recommend_many(
        self,
        user_ids: Sequence[UserId],
        now: float | None = None,
        source_event_ids: Mapping[UserId, str] | None = None,
        who_to_follow: bool | Collection[UserId] = True,
    ) -> list[dict[str, Any]]:
        """``recommendations`` payloads: kind "items" per user, then kind "users" for ``who_to_follow``
        (True = every user, a collection = those of ``user_ids`` in it, False = none)."""
        self.slot.apply_pending(self.store)
        if not user_ids:
            return []
        user_ids = list(dict.fromkeys(user_ids))
        now_ = self.store.now(now)
        src = source_event_ids or {}
        rows = self.store.rows_of(user_ids)
        wall = time.time()
        with metrics.stage("score"):
            q = self.scorer.user_vectors(rows)
            top = self.scorer.top(rows, q, now_, self.settings.top_k, self.slot.model)
            reasons = self.reasons.for_items(rows, top)
            if who_to_follow is True or who_to_follow is False:
                wtf_mask = np.full(len(user_ids), bool(who_to_follow))
            else:
                wanted = set(who_to_follow)
                wtf_mask = np.fromiter((u in wanted for u in user_ids), bool, len(user_ids))
            users: list[list[dict[str, Any]]] | None = None
            if wtf_mask.any() and self.settings.who_to_follow_k:
                sel = np.nonzero(wtf_mask)[0]
                got = users_to_follow(self.store, rows[sel], q[torch.from_numpy(sel).to(self.device)])
                users = [[] for _ in user_ids]
                for j, bi in enumerate(sel.tolist()):
                    users[bi] = got[j]
            ids = self.store.items.id
            scores = np.round(top.score.astype(np.float64), 6).tolist()
            top_rows = top.rows.tolist()
            out: list[dict[str, Any]] = []
            for bi, uid in enumerate(user_ids):
                rs = reasons[bi]
                r_rows, r_sc = top_rows[bi], scores[bi]
                items = [{"id": ids(r_rows[j]), "score": r_sc[j], "reason": rs[j]} for j in range(len(rs))]
                self.shown.published(uid, (i["id"] for i in items))
                out.append(self._payload(uid, wall, "items", items, src.get(uid)))
                if users is not None and wtf_mask[bi]:
                    out.append(self._payload(uid, wall, "users", users[bi], src.get(uid)))
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

    def answer_queries(self, queries: Sequence[Query], now: float | None = None) -> list[dict[str, Any]]:
        """kind "query" payloads: the query's words decide what matches, the asker's towers reorder
        within the matches (``service/queries.py``); the same filters as recommendations."""
        self.slot.apply_pending(self.store)
        if not queries:
            return []
        now_ = self.store.now(now)
        wall = time.time()
        with metrics.stage("score"):
            uniq = list(dict.fromkeys(qr.text for qr in queries))
            emb = self.encoder.encode(uniq).to(self.device, torch.float32)  # (T, D)
            pos = {t: i for i, t in enumerate(uniq)}
            rows = self.store.rows_of([qr.user_id for qr in queries])
            u = self.scorer.user_vectors(rows)
            qv = normalise(emb[[pos[qr.text] for qr in queries]])
            top = self.scorer.top(rows, u, now_, self.settings.top_k, self.slot.model, query_vec=qv)
        out = []
        ids = self.store.items.id
        for bi, qr in enumerate(queries):
            qwords = frozenset(words(qr.text))
            items = []
            for j in range(top.rows.shape[1]):
                r = int(top.rows[bi, j])
                if r < 0:
                    break
                reason = self.reasons.for_query(r, qwords, int(top.n_like[bi, j]))
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

    # ------------------------------------------------------------------ upkeep (``service/upkeep.py``)
    def expire(self, now: float | None = None) -> dict[str, dict[str, None]]:
        """Evict what retention expires at event time ``now`` (default: the clock); the deleted keys
        per table. ``learn_many`` calls it every ``retention_sweep_s`` of event time."""
        return self.upkeep.expire(now)

    def compact(self) -> None:
        """Reclaim the rows of evicted keys into a fresh store; scores stay those of a restore."""
        self.upkeep.compact()

    def restore(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild all state and every derived embedding from table contents (replaces current state)."""
        self.upkeep.restore(tables)

    def upsert(self, values: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Take over table values another worker wrote (None values: its deletions); counts per table."""
        return self.upkeep.upsert(values)

    # ------------------------------------------------------------------ model swap
    def load_snapshot(self, path: str) -> str:
        """Verify, load and attach the snapshot at ``path`` now, and serve it; returns its version.

        Blocks until served (tools, tests; a worker stages instead). A refused snapshot (truncated,
        bit-flipped, unreadable, or not servable by this engine) raises ``SnapshotError``, is counted
        in ``socrec_snapshot_rejected_total{reason}``, and the old model keeps serving.
        """
        return self.slot.load_snapshot(self.store, self.encoder, path)

    def stage_snapshot(self, path: str) -> str:
        """Start a hot swap to the snapshot at ``path`` (built off this engine's calls); returns its version."""
        return self.slot.stage_snapshot(self.store, self.encoder, path)

    def swap_outcome(self, version: str) -> str | None:
        """A staged swap's outcome: the version once it serves, None while building, or its ``SnapshotError``."""
        return self.slot.swap_outcome(self.store, version)

    def swap_model(self, model: ServingModel | None, version: str) -> None:
        """Serve ``model`` (None = zero-shot) from the next call on; in-flight batches finish on the old one."""
        self.slot.swap(model, version)

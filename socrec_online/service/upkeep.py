"""State upkeep: the engine's state and the verbs that rewrite it other than by applying events.

The engine applies its own events (``Engine.learn_many``) and scores. Everything else that
changes its state is here: ``restore`` (rebuild from the tables), ``upsert`` (take over the values
other workers wrote), ``expire`` (the retention sweep's evictions, rules in
``service/retention.py``) and ``compact`` (reclaim the rows of evicted keys into a fresh store).

A restore and a compaction replace the store, and with it the parts built over it (the ANN index,
the scorer, the reason caches), so those parts live here together and the engine reads them from
here. ``derive`` is the one step every change ends with, the engine's batches included: the
derived state, the ANN index, the reason caches and the attached model follow a ``BatchDelta``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from socrec_online import metrics
from socrec_online.service.ann import AnnIndex
from socrec_online.service.batch import BatchDelta, GraphChanges
from socrec_online.service.derive import derive, embed_texts, rebuild_all, rebuild_eng_rows
from socrec_online.service.heap import freeze_long_lived
from socrec_online.service.model_slot import ModelSlot
from socrec_online.service.protocols import TextEncoderLike
from socrec_online.service.reasons import Reasons
from socrec_online.service.retention import (
    Removed,
    compact_into,
    expired,
    needs_compaction,
    next_sweep_at,
    remove,
)
from socrec_online.service.scoring import Scorer
from socrec_online.service.state import load_tables
from socrec_online.service.store import Store
from socrec_online.service.tables_in import (
    report_skipped,
    restore_raw,
    upsert_activity,
    upsert_items,
    upsert_social,
)
from socrec_online.settings import Settings


class Upkeep:
    """The store and the parts over it (``ann``, ``scorer``, ``reasons``), and the verbs that
    restore, take over, evict and compact them. ``forget`` is told the users whose values went
    (the engine forgets what it showed them)."""

    def __init__(
        self,
        settings: Settings,
        encoder: TextEncoderLike,
        device: torch.device,
        slot: ModelSlot,
        forget: Callable[[Iterable[str]], None],
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.device = device
        self.slot = slot
        self.forget = forget
        self._reset()

    def _reset(self) -> None:
        self.store = Store(self.settings, int(self.encoder.dim), self.device)
        self.ann = AnnIndex(self.store)
        self.scorer = Scorer(self.store, self.ann)
        self.reasons = Reasons(self.store, self.scorer.item_vecs)

    def derive(self, d: BatchDelta) -> None:
        """Derived state, the ANN index, reason caches and the attached model follow the delta."""
        self.reasons.forget_items(d.items_changed)
        derive(self.store, self.encoder, d)
        self.ann.add(d.item_text)  # new and re-texted items (an edit is a tombstone and a new entry)
        if d.changes is not None:
            d.changes.item_ids = self.store.items.ids(d.item_text)
            d.changes.item_rows = list(d.item_text)
            self.slot.learn_batch(self.store, d.changes)

    # ------------------------------------------------------------------ from the tables
    def restore(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild all state and every derived embedding from table contents (replaces current state).

        Never raises on a table value: one that does not parse is left out, and an engagement naming
        an item not in the catalogue is kept in the user's state but left out of the derived state;
        both are counted (``socrec_state_values_skipped_total``) and logged in one line.
        """
        self._reset()
        st = self.store
        loaded = load_tables(tables, self.settings.dedup_ids_per_key)
        profiles, comments = restore_raw(st, loaded)
        item_texts = {r: st.item_state[st.items.id(r)].text for r in range(len(st.items))}
        with metrics.stage("embed"):
            embed_texts(st, self.encoder, item_texts, profiles, comments)
            unknown = rebuild_eng_rows(st, [st.users.row(uid) for uid in st.activity])
            rebuild_all(st)
            self.ann.add()
        st.update_graph_gauges()
        self.slot.attach(st)  # the model's own graph is derived state too
        report_skipped("restore", loaded.malformed, unknown)
        freeze_long_lived()  # the rebuilt state lives long: full collections stop rescanning it

    def upsert(self, values: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Take over table values another worker wrote (keys of partitions this worker does not own).

        With several workers each applies only its partitions' events, but scoring needs the whole
        graph, catalogue and the neighbours' interests. Every worker reads the others' changelogs
        (``streams.mirror``) and hands the latest full values here: the raw state is replaced, and
        only what it feeds is derived again (texts that changed, engagements, interests, the k-hop
        social tower, the ANN index). A value seen twice changes nothing. Publishes nothing: the
        worker that applied the event scored its users. A ``None`` value (a deletion: the owner
        evicted the key) removes the key like a retention sweep does.
        """
        st = self.store
        self.slot.apply_pending(st)
        gone = {t: [k for k, v in kv.items() if v is None] for t, kv in values.items()}
        loaded = load_tables(values, self.settings.dedup_ids_per_key)
        d = BatchDelta(latest=st.clock, changes=GraphChanges() if self.slot.learns_batches else None)
        n = {
            "items": upsert_items(st, d, loaded.items),
            "social": upsert_social(st, d, loaded.social),
            "activity": upsert_activity(st, d, loaded.activity),
        }
        removed = self._remove(gone.get("activity", []), gone.get("social", []), gone.get("items", []), d)
        n["items"] += len(removed.items)
        n["social"] += len(removed.social)
        n["activity"] += len(removed.activity)
        st.advance_clock(d.latest)
        with metrics.stage("embed"):
            self.derive(d)
        self._compact_if_due()
        report_skipped("upsert", loaded.malformed, 0)
        return n

    # ------------------------------------------------------------------ retention
    def sweep_if_due(self) -> dict[str, dict[str, None]]:
        """``expire`` when the clock reached the next sweep point (then the one after is set), else nothing."""
        st = self.store
        if st.clock < st.next_sweep:
            return {}
        st.next_sweep = next_sweep_at(st.clock, self.settings.retention_sweep_s)
        return self.expire()

    def expire(self, now: float | None = None) -> dict[str, dict[str, None]]:
        """Evict the users and items the retention settings expire at event time ``now`` (default:
        the clock; ``service/retention.py``) from the raw and derived state; returns the deleted keys
        per table (None values: the worker writes them as deletions). Running it again changes
        nothing. Counts what it evicted in ``socrec_evictions_total{kind}``: a user once, whether their
        activity value, their follows value or both went."""
        self.slot.apply_pending(self.store)
        act, soc, items = expired(self.store, self.store.now(now))
        removed = self._remove(act, soc, items)
        if removed:
            metrics.EVICTIONS.labels(kind="users").inc(len({*removed.activity, *removed.social}))
            metrics.EVICTIONS.labels(kind="items").inc(len(removed.items))
        return removed.deletions()

    def _remove(self, activity: list[str], social: list[str], items: list[str], d: BatchDelta | None = None) -> Removed:
        """Remove these keys' values; derive again what they fed (or leave it to the caller's ``d``)."""
        st = self.store
        own = d is None
        if d is None:  # a model that follows the graph is told the edges that went
            d = BatchDelta(latest=st.clock, changes=GraphChanges() if self.slot.learns_batches else None)
        removed = remove(st, d, activity, social, items)
        if not removed:
            return removed
        self.ann.remove(removed.item_rows)
        self.forget((*removed.activity, *removed.social))
        if own:
            with metrics.stage("embed"):
                self.derive(d)
            self._compact_if_due()
        return removed

    def _compact_if_due(self) -> None:
        if needs_compaction(self.store):
            self.compact()
        self.store.update_graph_gauges()

    def compact(self) -> None:
        """Move the live state into a fresh store: rows renumbered as a restore numbers them, text
        vectors carried over (nothing is encoded again), the rest derived again; the rows of evicted
        keys are reclaimed. Scores stay those of an engine restored from the same live values."""
        old = self.store
        self._reset()
        with metrics.stage("embed"):
            compact_into(old, self.store)
            del old
            self.ann.add()
        self.store.update_graph_gauges()
        self.slot.attach(self.store)
        freeze_long_lived()

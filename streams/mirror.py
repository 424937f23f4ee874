"""Shared state for scale-out: every worker follows every partition of the engine's changelogs.

Faust partitions the tables like the input topics, so with N workers each one applies only the
events of its partitions. Scoring needs more: the whole catalogue (items are keyed by item id),
the followees of its users and their likes and interests (keyed by *their* user ids, so often
owned elsewhere). Kafka already carries all of it: the changelogs. Each worker reads them with
its own group-less consumer (like a Faust GlobalTable, but with the engine told what changed),
keeps the latest value per key, and hands the values of partitions it does not own to
``Engine.upsert``, between micro-batches. Embeddings are not shipped: they are derived from this
state and the model snapshot, which every worker shares, so each derives the same vectors.

At start (and after every rebalance) the engine is rebuilt from the worker's own tables merged
with this view (:meth:`StateMirror.merge`): the first rebuild waits until the mirror has read
every changelog up to where it ended when the worker started.

Bounded by the live keys: a tombstone (the owner's retention sweep deleted the key) drops the key
here and is handed to ``Engine.upsert`` as None, which removes it from the engine too. Values of
partitions this worker owns are kept as well: should it lose one in a rebalance, its engine is
rebuilt from the latest values, not from what the worker last wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from socrec_online import metrics
from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.app import fetch_kwargs, kafka_client_kwargs, restarting
from streams.tables import FENCE_KEY

log = logging.getLogger("socrec.mirror")
GETMANY_TIMEOUT_MS = 200
APPLY_EVERY_S = 0.25
"""Values from other workers are applied at most this often (one engine call for all of them)."""
_FENCE = FENCE_KEY.encode()


class StateMirror:
    """The latest changelog value of every key, and the ones this worker has yet to apply."""

    def __init__(
        self,
        settings: Settings,
        changelogs: Mapping[str, str],
        owned: Callable[[], set[int] | None],
        apply: Callable[[Callable[[], dict[str, dict[str, Any]]]], Awaitable[int]],
    ) -> None:
        """``changelogs``: table name -> changelog topic; ``owned``: the partitions this worker owns
        now; ``apply(take)``: calls ``take`` and applies its values between batches, returns how
        many (0 and ``take`` not called while the engine waits for its rebuild)."""
        self.settings = settings
        self.topics = {topic: name for name, topic in changelogs.items()}
        self.owned = owned
        self._apply = apply
        self.values: dict[str, dict[str, tuple[int, bytes | None]]] = {n: {} for n in changelogs}
        self.pending: dict[str, dict[str, tuple[int, bytes | None]]] = {n: {} for n in changelogs}
        self.ready = asyncio.Event()
        self.records = 0
        self.applied = 0
        self._task: asyncio.Future[None] | None = None
        self.assignment: Callable[[], set[int]] = set  # the consumer's view (merge's fallback)
        self._read_to: dict[tuple[str, int], int] = {}  # (table, partition) -> the reader's position

    def changelog_of(self, table: str) -> str:
        """The changelog topic of ``table``."""
        return next(topic for topic, name in self.topics.items() if name == table)

    def read_to(self, table: str, partition: int) -> int | None:
        """The offset the reader reached on ``table``'s changelog partition (None: not reading it)."""
        return self._read_to.get((table, partition))

    def is_pending(self, table: str, key: str) -> bool:
        """Was a value of ``key`` read but not applied to the engine yet?"""
        return key in self.pending[table]

    def add(self, table: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        if key is None or key == _FENCE:
            return
        k = key.decode("utf-8", "replace")
        if value is None:  # a tombstone: the key is gone (its deletion is still to be applied)
            self.values[table].pop(k, None)
        else:
            self.values[table][k] = (partition, value)
        self.pending[table][k] = (partition, value)
        self.records += 1

    def _decoded(
        self, source: Mapping[str, Mapping[str, tuple[int, bytes | None]]], owned: set[int], deletions: bool = False
    ) -> dict[str, dict[str, Any]]:
        """The values of partitions not in ``owned``; with ``deletions``, tombstones as None too."""
        out: dict[str, dict[str, Any]] = {}
        for table, kv in source.items():
            out[table] = {
                k: None if v is None else orjson.loads(v)
                for k, (p, v) in kv.items()
                if p not in owned and (deletions or v is not None)
            }
        return out

    async def rebuild_state(self, own: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The state to rebuild the engine from after a (re)assignment.

        A worker that owns every partition needs nobody's changelog: the reader stops and forgets
        what it held (a single worker pays nothing for scale-out). Otherwise the reader runs, from
        the beginning if it was stopped, and this waits until it caught up, then merges."""
        owned = self.owned()
        if owned is None:  # recovery finished before Faust's assignment signal: ask the consumer
            owned = self.assignment()
        if owned >= set(range(self.settings.partitions)):
            await self.stop()
            self.clear()
            return {t: dict(kv) for t, kv in own.items()}
        await self.wait_ready()
        return self.merge(own, owned)

    def clear(self) -> None:
        for d in (*self.values.values(), *self.pending.values()):
            d.clear()
        self.ready.clear()
        self.records = 0

    def merge(self, own: Mapping[str, Mapping[str, Any]], owned: set[int] | None = None) -> dict[str, dict[str, Any]]:
        """The state to rebuild the engine from: this worker's tables for the partitions it owns, and
        for every other partition the latest value read from the changelog (newer than any local copy
        a revoked partition left behind, which is ignored). Everything read so far is in it, so nothing is pending after."""
        if owned is None:
            owned = self.owned()
        if owned is None:
            owned = self.assignment()
        merged = self._decoded(self.values, owned)
        n = self.settings.partitions
        for table, kv in own.items():
            m = merged.setdefault(table, {})
            for k, v in kv.items():
                # a copy of another partition's key comes back only if its changelog still has it:
                # one its owner deleted (a tombstone) stays deleted
                if owner_partition(k, n) in owned:
                    m.setdefault(k, v)
        for kv in self.pending.values():
            kv.clear()
        return merged

    def take(self) -> dict[str, dict[str, Any]]:
        """What other workers wrote since the last take, their partitions only (pending is emptied);
        a deletion is a None value.

        Called under the pipeline's lock, so ownership cannot change between this choice and the
        engine applying it: a value of a partition this worker just took over is never applied over
        what its recovered table says."""
        owned = self.owned()
        if owned is None:  # a rebalance is under way: wait for the new assignment
            return {t: {} for t in self.pending}
        values = self._decoded(self.pending, owned, deletions=True)
        for kv in self.pending.values():
            kv.clear()
        return values

    async def flush(self) -> None:
        """Apply what other workers wrote since the last flush (between two micro-batches)."""
        if not any(self.pending.values()):
            return
        n = await self._apply(self.take)
        if n:
            self.applied += n
            metrics.SHARED_STATE_APPLIED.inc(n)

    def start(self) -> None:
        """Start reading (once; a reader that failed is restarted by ``_forever``)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._read_to.clear()

    async def wait_ready(self) -> None:
        """Until every changelog is read up to where it ended when reading began (logged while waiting)."""
        self.start()
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(self.ready.wait()), timeout=10.0)
                return
            except TimeoutError:
                log.warning("still reading the changelogs for the shared state (%d records so far)", self.records)

    async def _forever(self) -> None:
        # a broker hiccup: read again from the start (values are idempotent)
        await restarting(self.run, log, "shared-state reader", "shared_state")

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **fetch_kwargs(self.settings),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tps: list[TopicPartition] = []
            while True:
                parts = {t: consumer.partitions_for_topic(t) for t in self.topics}
                if all(parts.values()):
                    tps = [TopicPartition(t, p) for t, ps in parts.items() for p in sorted(ps or ())]
                    break
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.5)
            consumer.assign(tps)
            self._read_to.clear()
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            behind = {tp for tp in tps if end[tp] > 0}
            log.info("reading %d changelog partitions (%d records) for the shared state", len(tps), sum(end.values()))
            t0 = time.perf_counter()
            if not behind:
                self.ready.set()
            last_apply = 0.0
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=GETMANY_TIMEOUT_MS)
                for tp, msgs in batch.items():
                    table = self.topics[tp.topic]
                    for m in msgs:
                        self.add(table, tp.partition, m.key, m.value)
                for tp in tps:  # local once the position is known (no request)
                    self._read_to[(self.topics[tp.topic], tp.partition)] = await consumer.position(tp)
                if behind:
                    behind = {tp for tp in behind if self._read_to[(self.topics[tp.topic], tp.partition)] < end[tp]}
                    if not behind:
                        log.info("shared state read: %d records in %.2fs", self.records, time.perf_counter() - t0)
                        self.ready.set()
                now = time.monotonic()
                if self.ready.is_set() and now - last_apply >= APPLY_EVERY_S:
                    last_apply = now
                    await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


def register_mirror(app: Any, settings: Settings, tables: Mapping[str, Any], pipeline: Any) -> StateMirror:
    """Give the pipeline a mirror of every changelog; it starts the reader at its first rebuild
    (Faust starts app tasks only after table recovery, and that rebuild runs inside recovery)."""
    from socrec_online.events import INPUT_TOPICS
    from streams.topics import topic_name

    inputs = {topic_name(settings, t) for t in INPUT_TOPICS}

    # Ownership as the group last assigned it; None from a revocation until the next assignment
    # (the consumer's own view is empty or stale meanwhile, and a worker must never take its own,
    # lagging changelog values over its newer state). Co-partitioned: owning partition p of the
    # inputs is owning partition p of every changelog.
    now: dict[str, set[int] | None] = {"owned": None}

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        now["owned"] = None

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        now["owned"] = {tp.partition for tp in assigned or () if tp.topic in inputs}

    def owned() -> set[int] | None:
        return now["owned"]

    def assignment() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in inputs}

    changelogs = {name: t.changelog_topic.get_topic_name() for name, t in tables.items()}
    mirror = StateMirror(settings, changelogs, owned, pipeline.upsert)
    mirror.assignment = assignment
    pipeline.shared = mirror

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _stop_mirror(sender: Any, **kwargs: Any) -> None:
        await mirror.stop()

    return mirror

"""``model-updates``: the trainer (and ``socrec snapshots rollback``) announce, every worker hot-swaps.

Why a group-less aiokafka consumer and not a Faust agent: an agent reads its topic inside the
workers' consumer group, so with N workers each announcement would reach only one of them.
Every worker must swap, so each reads all partitions of ``model-updates`` itself, from the end:
what was announced before it started is already on disk as ``CURRENT``, which the engine
loaded at start (and which is checked once more when this consumer is up, closing the gap).

An announcement names a version; the worker loads ``SOCREC_SNAPSHOT_DIR/<version>`` (its own
mount of the snapshot store, never a path from the wire), verifies every checksum, builds the
scorer on a thread of the engine while batches go on, and swaps it in between two batches (the
batches applied meanwhile are replayed into it first), so serving never waits for a build. A refused snapshot is counted and logged; the old model
keeps serving. Announcements are keyed by one constant key, so they share one partition and
keep their order (a rollback announced after a publish wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from socrec_online import metrics
from socrec_online.settings import Settings
from socrec_online.snapshot import SnapshotError, current, is_version, verify_snapshot
from streams.app import kafka_client_kwargs, restarting
from streams.topics import MODEL_UPDATES, topic_name

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger("socrec.model_updates")
ANNOUNCE_KEY = b"model"
FETCH_MAX_WAIT_MS = 500
SWAP_POLL_S = 0.02  # how often a worker asks whether a staged swap serves yet


def announcement(version: str, path: str, scores: dict[str, Any] | None = None, ts: float | None = None) -> bytes:
    """The DESIGN.md record: ``{"version", "path", "metrics", "ts"}``."""
    return orjson.dumps(
        {"version": version, "path": path, "metrics": scores or {}, "ts": time.time() if ts is None else ts}
    )


async def announce(
    settings: Settings, version: str, path: str, scores: dict[str, Any] | None = None, producer: Any | None = None
) -> None:
    """Publish one announcement and wait for the broker's ack (own producer unless one is given)."""
    from aiokafka import AIOKafkaProducer

    value = announcement(version, path, scores)
    topic = topic_name(settings, MODEL_UPDATES)
    if producer is not None:
        await producer.send_and_wait(topic, value=value, key=ANNOUNCE_KEY)
        return
    p = AIOKafkaProducer(**kafka_client_kwargs(settings), acks="all", client_id="socrec-announce")
    await p.start()
    try:
        await p.send_and_wait(topic, value=value, key=ANNOUNCE_KEY)
    finally:
        await p.stop()


class ModelUpdates:
    """Follows ``model-updates`` for one worker and swaps its engine's model between batches."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.applied: list[str] = []
        self.refused: list[str] = []

    async def apply(self, record: Any) -> str | None:
        """Load the announced version; returns it, or None when refused (the old model keeps serving)."""
        version = record.get("version") if isinstance(record, dict) else None
        if not isinstance(version, str) or not is_version(version):
            metrics.SNAPSHOT_REJECTED.labels(reason="announcement").inc()
            log.warning("ignored a malformed model-updates record: %.200r", record)
            return None
        path = self.settings.snapshot_dir / version
        engine = self.pipeline.engine
        try:
            # checked here first (off the loop): a bad snapshot never reaches the engine, wherever
            # it runs, and is counted in this process's metrics
            await asyncio.to_thread(verify_snapshot, path)
        except SnapshotError as e:
            metrics.SNAPSHOT_REJECTED.labels(reason=e.reason.value).inc()
            self._refused(version, e.reason.value)
            return None
        try:
            # staged: the engine copies its graph, builds the new scorer on a thread while batches go
            # on, and swaps it in at the start of a later call (between batches)
            between = self.pipeline.between_batches
            staged = await between(engine.stage_snapshot, str(path), before_restore=True)
            while (got := await between(engine.swap_outcome, staged, before_restore=True)) is None:
                await asyncio.sleep(SWAP_POLL_S)
        except SnapshotError as e:  # refused by the engine (in this process or its own): counted there
            self._refused(version, e.reason.value)
            return None
        metrics.SNAPSHOT_LAST_SUCCESS.set(time.time())
        self.applied.append(got)
        log.info("now serving model %s", got)
        return str(got)

    def _refused(self, version: str, why: str) -> None:
        self.refused.append(version)
        log.warning("refused snapshot %s (%s): still serving %s", version, why,
                    getattr(self.pipeline.engine, "model_version", "?"))

    async def catch_up(self) -> None:
        """Serve CURRENT if it moved between the engine's start and this consumer's."""
        cur = current(self.settings.snapshot_dir)
        serving = self.pipeline.engine.next_model_version  # loaded at start, attached on the first call
        if cur is not None and cur != serving:
            await self.apply({"version": cur})

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        name = topic_name(self.settings, MODEL_UPDATES)
        # a swap may wait a fraction of a second; the broker should not serve 20 empty fetches a second
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self.settings), group_id=None, enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(name)
            while not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(name)
                if not parts:
                    await asyncio.sleep(1.0)
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)  # resolve "end" now, before catching up from disk
            await self.catch_up()
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=500)
                for msgs in batch.values():
                    for m in msgs:
                        try:
                            record = orjson.loads(m.value) if m.value is not None else None
                        except orjson.JSONDecodeError:
                            record = None
                        await self.apply(record)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


def register_model_updates(app: Any, settings: Settings, pipeline: Pipeline) -> ModelUpdates:
    """Run the follower as a task of the worker's Faust app (started and cancelled with it)."""
    follower = ModelUpdates(settings, pipeline)

    @app.task
    async def _follow_model_updates() -> None:
        await restarting(follower.run, log, "model-updates follower", "model_updates")

    return follower

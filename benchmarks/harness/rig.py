"""The rig of ``socrec bench reliability`` and ``tests/reliability``: one worker as a black box.

Everything here treats the worker as a black box: a ``python -m streams worker`` process, its
Kafka topics, and its metrics server (``/metrics``, ``/healthz``, ``/debug/state``). So the
same scenarios hold whether the engine runs on a thread or in a child process of the worker.
The generated streams are in :mod:`benchmarks.harness.streams`, the replay oracle in
:mod:`benchmarks.harness.oracle`, the scenarios in :mod:`benchmarks.crashes`,
:mod:`benchmarks.poison` and :mod:`benchmarks.load`, the bench itself in :mod:`benchmarks.reliability`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from socrec_online.broker import free_port
from socrec_online.events import INPUT_TOPICS, Event
from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.observe import scrape
from streams.procs import WorkerProcess
from streams.replay import EventProducer, ProduceStats, produce


# ----------------------------------------------------------------------------- Kafka I/O
@dataclass
class Record:
    topic: str  # full name (with the prefix)
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: tuple[tuple[str, bytes], ...] = ()

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value else None


async def read_topics(settings: Settings, names: Iterable[str], timeout: float = 30.0) -> list[Record]:
    """Every record now in ``names`` (full topic names), from the beginning, in partition order."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.app import kafka_client_kwargs

    c = AIOKafkaConsumer(
        **kafka_client_kwargs(settings), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [
            TopicPartition(n, p) for n in names for p in sorted(c.partitions_for_topic(n) or ())
        ]
        if not tps:
            return []
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        # Tansu's ListOffsets(latest) can point inside the last batch: read until every end
        # offset is passed *and* a poll comes back empty.
        while time.monotonic() < deadline:
            batch = await c.getmany(*tps, timeout_ms=300, max_records=5000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(Record(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp / 1000, tuple(m.headers or ())))
            if not batch:
                positions = [await c.position(tp) for tp in tps]
                if all(p >= end[tp] for p, tp in zip(positions, tps, strict=True)):
                    break
        return out
    finally:
        await c.stop()


async def end_offsets(settings: Settings, names: Iterable[str]) -> dict[tuple[str, int], int]:
    """What the broker answers ListOffsets(latest) with, per (topic, partition): what a recovery reads up to."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.app import kafka_client_kwargs

    c = AIOKafkaConsumer(**kafka_client_kwargs(settings), group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [TopicPartition(n, p) for n in names for p in sorted(c.partitions_for_topic(n) or ())]
        end = await c.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): int(o) for tp, o in end.items()}
    finally:
        await c.stop()


# ----------------------------------------------------------------------------- the rig
class Rig:
    """One worker (a real process) on a broker of ``broker_kind``, with its own topic prefix and group."""

    def __init__(
        self,
        bootstrap: str,
        workdir: Path,
        prefix: str,
        *,
        text_model: Path | None = None,
        partitions: int = 3,
        env: dict[str, str] | None = None,
        loglevel: str = "INFO",
        broker_kind: str = "kafka",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.loglevel = loglevel
        self.env = {
            "SOCREC_KAFKA_BOOTSTRAP": bootstrap,
            "SOCREC_BROKER": broker_kind,
            "SOCREC_TOPIC_PREFIX": prefix,
            "SOCREC_APP_ID": f"rel-{prefix.strip('.')}",
            "SOCREC_PARTITIONS": str(partitions),
            "SOCREC_METRICS_PORT": str(free_port()),
            "SOCREC_WEB_PORT": str(free_port()),
            "SOCREC_DATA_DIR": str(self.workdir / "data"),
            "SOCREC_SNAPSHOT_DIR": str(self.workdir / "snapshots"),
            "SOCREC_DEBUG_STATE_ROUTE": "true",
            "SOCREC_DEVICE": os.environ.get("SOCREC_DEVICE", "cpu"),
        }
        if text_model is not None:
            self.env["SOCREC_TEXT_MODEL_PATH"] = str(text_model)
        self.env.update(env or {})
        self.worker: WorkerProcess | None = None
        self.starts = 0

    @property
    def settings(self) -> Settings:
        return Settings(**{k[len("SOCREC_") :].lower(): v for k, v in self.env.items()})  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return int(self.env["SOCREC_METRICS_PORT"])

    @property
    def pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else None

    def topic(self, base: str) -> str:
        return f"{self.prefix}{base}"

    # -- worker lifecycle (blocking; call through asyncio.to_thread from async code) ------
    def start(self, timeout: float = 300.0) -> float:
        """Start a worker process and wait until it is ready (tables recovered); returns the seconds."""
        self.starts += 1
        t0 = time.monotonic()
        self.worker = WorkerProcess(
            self.env, log_path=self.workdir / f"worker-{self.starts}.log", loglevel=self.loglevel
        )
        self.worker.start()
        self.worker.wait_ready(timeout)
        return time.monotonic() - t0

    def kill(self) -> None:
        """``kill -9`` the worker (its whole process group: an engine child dies with it)."""
        if self.worker is not None:
            self.worker.kill()

    def terminate(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit code, seconds to exit). SIGKILL (code -9) past ``timeout``."""
        if self.worker is None:
            return None, 0.0
        t0 = time.monotonic()
        rc = self.worker.stop(timeout=timeout)
        return rc, time.monotonic() - t0

    def stop(self) -> None:
        if self.worker is not None and self.worker.alive():
            self.worker.stop()

    def log_tail(self, n: int = 4000) -> str:
        return self.worker.log_tail(n) if self.worker is not None else ""

    # -- observation ------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        return scrape(self.port)

    def get(self, path: str, timeout: float = 35.0) -> tuple[int, Any]:
        """GET a JSON route of the worker's metrics server: (status, parsed body); (0, None) when down."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return int(r.status), orjson.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            return int(e.code), (orjson.loads(body) if body else None)
        except (OSError, ValueError):
            return 0, None

    def state(self) -> dict[str, Any] | None:
        status, body = self.get("/debug/state")
        return body if status == 200 else None

    def health(self) -> tuple[int, Any]:
        return self.get("/healthz", timeout=5.0)

    # -- Kafka ------------------------------------------------------------------------------
    async def ensure_topics(self) -> None:
        from streams.admin import ensure_topics
        from streams.topics import required_topics

        s = self.settings
        await ensure_topics(s, required_topics(s))

    async def produce(
        self, events: Iterable[Event], rate: float = 0.0, on_sent: Callable[[Event], None] | None = None
    ) -> ProduceStats:
        async with EventProducer(self.settings) as p:
            return await produce(p, events, rate, on_sent=on_sent)

    async def produce_raw(self, records: Iterable[tuple[str, str | None, bytes]]) -> list[Any]:
        """(base topic, key, value) records as they are; returns their RecordMetadata in order."""
        async with EventProducer(self.settings) as p:
            futs = [await p.send_raw(t, k, v) for t, k, v in records]
            return list(await asyncio.gather(*futs))

    async def inputs(self) -> list[Record]:
        return await read_topics(self.settings, [self.topic(t) for t in INPUT_TOPICS])

    async def dead_letters(self) -> list[Record]:
        return await read_topics(self.settings, [self.topic("dead-letters")])

    async def recommendations(self) -> list[Record]:
        return await read_topics(self.settings, [self.topic("recommendations")])

    async def changelog_records(self) -> dict[str, list[tuple[Record, str]]]:
        """Every changelog record per table, with its key decoded (fence records left out)."""
        from socrec_online.service.engine import Engine

        app_id = self.env["SOCREC_APP_ID"]
        out: dict[str, list[tuple[Record, str]]] = {}
        for table in Engine.TABLES:
            rows: list[tuple[Record, str]] = []
            for r in await read_topics(self.settings, [f"{app_id}-{table}-changelog"]):
                k = (r.key or b"").decode("utf-8", "replace")
                if k.startswith('"'):  # a JSON-encoded key (older workers)
                    with contextlib.suppress(ValueError):
                        k = str(orjson.loads(k))
                if k.startswith("\x00"):  # streams.tables fence records, never state
                    continue
                rows.append((r, k))
            out[table] = rows
        return out

    async def changelog(self) -> dict[str, dict[str, Any]]:
        """The tables as their changelog topics hold them now (last value per key; deletes dropped)."""
        out: dict[str, dict[str, Any]] = {}
        for table, rows in (await self.changelog_records()).items():
            kv: dict[str, Any] = {}
            for r, k in rows:
                if r.value is None:
                    kv.pop(k, None)
                else:
                    kv[k] = orjson.loads(r.value)
            out[table] = kv
        return out

    def changelog_topics(self) -> list[str]:
        from socrec_online.service.engine import Engine

        return [f"{self.env['SOCREC_APP_ID']}-{table}-changelog" for table in Engine.TABLES]

    async def changelog_cut(self) -> dict[str, Any]:
        """What a table recovery would miss now: changelog records at or past the broker's reported end.

        Faust recovers a changelog partition up to ListOffsets(latest); Tansu reports the start of
        the last record batch + 1 there, so only a fence may sit past it (``streams/tables.py``).
        Any state record past it is dropped by the next recovery: the crash test records this at
        every kill, so a loss can be told apart from a stalled worker or an early oracle.
        """
        names = self.changelog_topics()
        end = await end_offsets(self.settings, names)
        records = await read_topics(self.settings, names)
        committed = await self.committed()
        source: dict[str, tuple[str, int, int]] = {}  # event id -> where it sits in the input topics
        for r in await self.inputs():
            with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
                source[str(r.json()["event_id"])] = (r.topic, r.partition, r.offset)
        true_end: dict[tuple[str, int], int] = {}
        cut: list[str] = []
        recovered: dict[tuple[str, str], set[str]] = {}  # (topic, key) -> event ids a recovery reads back
        lost: list[str] = []
        for r in records:
            tp = (r.topic, r.partition)
            true_end[tp] = max(true_end.get(tp, 0), r.offset + 1)
            key = (r.key or b"").decode("utf-8", "replace")
            if key.startswith("\x00"):
                continue
            ids = set((r.json() or {}).get("ids") or ())
            if r.offset < end.get(tp, 0):
                recovered[(r.topic, key)] = ids
                continue
            cut.append(f"{r.topic}/{r.partition}@{r.offset}:{key}")
            # Effects only this unread record holds, of events whose offsets are already committed:
            # the restart neither recovers them nor replays their events (lost for good).
            for eid in ids - recovered.get((r.topic, key), set()):
                t, p, o = source.get(eid, ("?", -1, -1))
                if o >= 0 and o < committed.get((t, p), 0):
                    lost.append(eid)
        return {
            "state_records_past_end": len(cut),
            "committed_effects_past_end": len(lost),
            "lost_examples": sorted(lost)[:10],
            "examples": cut[:10],
            "partitions_short": sum(1 for tp, e in true_end.items() if e > end.get(tp, 0)),
            "reported_end": {f"{t}/{p}": o for (t, p), o in sorted(end.items())},
            "true_end": {f"{t}/{p}": o for (t, p), o in sorted(true_end.items())},
        }

    async def misplaced_changelog_keys(self) -> int:
        """Changelog records not in the partition of the input events keyed like them (co-partitioning)."""
        n = int(self.env["SOCREC_PARTITIONS"])
        return sum(
            1 for rows in (await self.changelog_records()).values() for r, k in rows if r.partition != owner_partition(k, n)
        )

    async def committed(self) -> dict[tuple[str, int], int]:
        """The consumer group's committed offsets of the input topics: (topic, partition) -> offset.

        Read with a manually assigned consumer of the group (OffsetFetch without joining it);
        aiokafka's admin client cannot decode Tansu's OffsetFetch answer.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.app import kafka_client_kwargs

        c = AIOKafkaConsumer(
            **kafka_client_kwargs(self.settings), group_id=self.env["SOCREC_APP_ID"], enable_auto_commit=False
        )
        await c.start()
        try:
            await c._client.force_metadata_update()
            tps = [
                TopicPartition(self.topic(t), p)
                for t in INPUT_TOPICS
                for p in sorted(c.partitions_for_topic(self.topic(t)) or ())
            ]
            c.assign(tps)
            out: dict[tuple[str, int], int] = {}
            for tp in tps:
                off = await c.committed(tp)
                if off is not None and off >= 0:
                    out[(tp.topic, tp.partition)] = int(off)
            return out
        finally:
            await c.stop()


__all__ = [
    "Record",
    "Rig",
    "end_offsets",
    "read_topics",
]

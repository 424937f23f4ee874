"""Integration fixtures: a real broker over TCP (Apache Kafka unless SOCREC_BROKER=embedded) and real
worker processes.

One broker per session; each service under test gets its own topic prefix and consumer
group on it, so tests never see each other's records. Helpers are synchronous (one
``asyncio.run`` per call) so the tests read like a user's script.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from socrec_online.broker import free_port
from socrec_online.brokers import ManagedBroker, make_broker
from socrec_online.events import Event
from socrec_online.settings import Settings

pytestmark = pytest.mark.integration

PARTITIONS = 3  # differs from both brokers' auto-create defaults (Kafka 1, Tansu 4): the worker made them


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, broker_kind: str) -> Iterator[ManagedBroker]:
    """The session's broker (Apache Kafka, data on disk in a temporary folder) on a free loopback port."""
    folder = tmp_path_factory.mktemp("broker")
    b = make_broker(broker_kind, data_dir=folder / "data", log_path=folder / "broker.log")  # type: ignore[arg-type]
    b.start()
    try:
        yield b
    finally:
        b.close()


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any  # parsed JSON (or the raw bytes when not JSON)
    timestamp: float


class Service:
    """A worker process plus a producer/reader on its topics (prefix ``prefix``)."""

    def __init__(self, broker: ManagedBroker, prefix: str, workdir: Path, text_model: Path) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.env = {
            "SOCREC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SOCREC_BROKER": broker.kind,
            "SOCREC_TOPIC_PREFIX": prefix,
            "SOCREC_APP_ID": f"it-{prefix.strip('.')}",
            "SOCREC_PARTITIONS": str(PARTITIONS),
            "SOCREC_TEXT_MODEL_PATH": str(text_model),
            "SOCREC_DEVICE": "cpu",
            "SOCREC_METRICS_PORT": str(free_port()),
            "SOCREC_WEB_PORT": str(free_port()),
            "SOCREC_DATA_DIR": str(workdir / "data"),
            "SOCREC_SNAPSHOT_DIR": str(workdir / "snapshots"),  # empty: zero-shot model
            "SOCREC_BATCH_MAX_SECONDS": "0.05",
        }
        self.settings = Settings(**{k[len("SOCREC_") :].lower(): v for k, v in self.env.items()})  # type: ignore[arg-type]
        self.worker: Any = None
        self.starts = 0

    # -- worker lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        from streams.procs import WorkerProcess

        self.starts += 1
        self.worker = WorkerProcess(
            self.env, log_path=self.workdir / f"worker-{self.starts}.log", loglevel="INFO"
        )
        self.worker.start()
        self.worker.wait_ready(timeout)

    def stop(self) -> int | None:
        return self.worker.stop() if self.worker is not None else None

    # -- Kafka I/O ---------------------------------------------------------------------------
    def send(self, *events: Event) -> list[Any]:
        """Produce typed events (topic, key and JSON per DESIGN.md); returns their RecordMetadata."""
        from streams.replay import EventProducer

        async def go() -> list[Any]:
            async with EventProducer(self.settings) as p:
                futs = [await p.send(e) for e in events]
                return [await f for f in futs]

        return asyncio.run(go())

    def processed(self) -> float:
        """Input events the worker has finished with (its socrec_events_total, every outcome)."""
        from streams.observe import events_done, scrape

        return events_done(scrape(int(self.env["SOCREC_METRICS_PORT"])))

    def send_and_wait(self, *events: Event, timeout: float = 60.0) -> list[Any]:
        """Produce, then wait until the worker has handled that many more events."""
        before = self.processed()
        mds = self.send(*events)
        deadline = time.monotonic() + timeout
        while self.processed() < before + len(events):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"worker did not process {len(events)} events in {timeout:.0f}s:\n{self.worker.log_tail()}"
                )
            time.sleep(0.1)
        return mds

    def send_raw(self, topic: str, key: str | None, value: bytes) -> Any:
        from streams.replay import EventProducer

        async def go() -> Any:
            async with EventProducer(self.settings) as p:
                return await (await p.send_raw(topic, key, value))

        return asyncio.run(go())

    def records(self, topic: str) -> list[Record]:
        """Every record of ``topic`` (without prefix) currently in the broker, values parsed."""
        from benchmarks.harness.rig import read_topics

        out: list[Record] = []
        for r in asyncio.run(read_topics(self.settings, [f"{self.prefix}{topic}"], timeout=20)):
            try:
                v: Any = orjson.loads(r.value) if r.value is not None else None
            except orjson.JSONDecodeError:
                v = r.value
            out.append(Record(r.topic, r.partition, r.offset, r.key, v, r.timestamp))
        return out

    def wait_for(
        self, topic: str, pred: Callable[[Record], bool], n: int = 1, timeout: float = 60.0
    ) -> list[Record]:
        """Poll ``topic`` until ``n`` records satisfy ``pred``; fails with the worker log otherwise."""
        deadline = time.monotonic() + timeout
        got: list[Record] = []
        while time.monotonic() < deadline:
            got = [r for r in self.records(topic) if pred(r)]
            if len(got) >= n:
                return got
            if self.worker is not None and not self.worker.alive():
                break
            time.sleep(0.3)
        tail = self.worker.log_tail() if self.worker is not None else ""
        pytest.fail(f"{len(got)}/{n} matching records on {topic} after {timeout:.0f}s; worker log:\n{tail}")

    def recs_for(self, user_id: str, kind: str = "items") -> list[Record]:
        return [
            r
            for r in self.records("recommendations")
            if isinstance(r.value, dict) and r.value.get("user_id") == user_id and r.value.get("kind") == kind
        ]


@pytest.fixture(scope="module")
def service_factory(
    broker: ManagedBroker, tiny_text_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Service]]:
    """Make services on the session broker; every worker started is stopped at module end."""
    made: list[Service] = []

    def make(prefix: str) -> Service:
        s = Service(broker, prefix, tmp_path_factory.mktemp(prefix.strip(".")), tiny_text_model_path)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()

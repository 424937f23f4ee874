"""examples/ and ``socrec produce`` / ``socrec tail`` against the session's Apache Kafka, as a user runs them.

Each test has its own topic prefix (3 partitions) on the session broker and runs the real
clients as subprocesses: the four example scripts, and the ``socrec`` CLI through
``python -m streams`` (this checkout's code, not an installed one). No worker runs:
recommendation-shaped records are produced directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from socrec_online.brokers import ManagedBroker
from socrec_online.events import INPUT_TOPICS
from socrec_online.service.decode import check_key, decode_event
from socrec_online.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
RUN_TIMEOUT_S = 60.0


class Topics:
    """One prefix on the session broker: its topics made (3 partitions), subprocess env, reads."""

    def __init__(self, broker: ManagedBroker) -> None:
        from streams.admin import ensure_topics
        from streams.topics import required_topics

        self.prefix = f"ex-{uuid.uuid4().hex[:8]}."
        self.env = {
            **os.environ,
            "SOCREC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SOCREC_TOPIC_PREFIX": self.prefix,
            "SOCREC_PARTITIONS": str(PARTITIONS),
            "PYTHONUNBUFFERED": "1",
        }
        self.settings = Settings(
            kafka_bootstrap=broker.bootstrap, topic_prefix=self.prefix, partitions=PARTITIONS
        )
        asyncio.run(ensure_topics(self.settings, required_topics(self.settings)))

    def run(self, *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, *argv],
            check=False,
            input=stdin,
            capture_output=True,
            cwd=ROOT,
            env=self.env,
            timeout=RUN_TIMEOUT_S,
        )

    def records(self, *bases: str) -> list[Any]:
        from benchmarks.harness.rig import read_topics

        return asyncio.run(read_topics(self.settings, [self.prefix + b for b in bases], timeout=20))

    def send(self, topic: str, *records: dict[str, Any]) -> None:
        from streams.replay import EventProducer

        async def go() -> None:
            async with EventProducer(self.settings) as p:
                for r in records:
                    await (await p.send_raw(topic, r["user_id"], json.dumps(r).encode()))

        asyncio.run(go())


def murmur2_partition(key: bytes) -> int:
    """The partition the workers expect (Java client's murmur2). At 3 partitions CRC32, confluent-kafka's
    default, puts both example keys elsewhere ("alice": 2 not 0, "post-1": 0 not 2), so the check bites."""
    parts = list(range(PARTITIONS))
    return int(DefaultPartitioner()(key, parts, parts))


def rec(user: str, kind: str, rec_id: str) -> dict[str, Any]:
    """A recommendations value as docs/topics.md specifies it."""
    return {
        "user_id": user,
        "ts": time.time(),
        "model_version": "zero-shot",
        "kind": kind,
        "items": [{"id": "post-1", "score": 0.91, "reason": "liked by someone you follow"}],
        "source_event_id": f"src-{rec_id}",
        "rec_id": rec_id * 32,
        "schema_version": 1,
    }


@pytest.mark.parametrize("script", ["produce_aiokafka.py", "produce_confluent.py"])
def test_example_producer_sends_valid_events_keyed_and_partitioned_as_the_workers_expect(
    broker: ManagedBroker, script: str
) -> None:
    t = Topics(broker)
    done = t.run(str(ROOT / "examples" / script))
    assert done.returncode == 0, done.stderr.decode()
    got = t.records(*INPUT_TOPICS)
    assert sorted(r.topic[len(t.prefix) :] for r in got) == sorted(
        ["items", "profiles", "follows", "likes", "clicks", "queries"]
    )
    for r in got:
        event = decode_event(r.topic[len(t.prefix) :], r.value, t.settings)  # the worker accepts it
        assert r.key is not None
        check_key(event, r.key)  # keyed by its owner: user id, item id on items
        assert r.partition == murmur2_partition(r.key), (script, r.key, r.partition)
    assert len(done.stdout.decode().splitlines()) == 6


@pytest.mark.parametrize("script", ["consume_aiokafka.py", "consume_confluent.py"])
def test_example_consumer_prints_user_kind_items_reasons_and_drops_a_repeated_rec_id(
    broker: ManagedBroker, script: str
) -> None:
    t = Topics(broker)
    a, again, b = rec("alice", "items", "a"), rec("alice", "items", "a"), rec("bob", "users", "b")
    t.send("recommendations", a, again, b)
    done = t.run(str(ROOT / "examples" / script), "--max", "2")
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert out.count(f"alice items rec_id={'a' * 32} model=zero-shot") == 1, out  # the repeat is dropped
    assert out.count(f"bob users rec_id={'b' * 32} model=zero-shot") == 1, out
    assert out.count("1. post-1 0.910 liked by someone you follow") == 2, out


def test_socrec_produce_sends_the_valid_lines_keyed_and_reports_the_invalid_ones(
    broker: ManagedBroker,
) -> None:
    t = Topics(broker)
    lines = [
        {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1700000000},
        {"event_id": "e2", "item_id": "i1", "ts": 1700000000},  # no user_id
        {"event_id": "e3", "user_id": "u2", "item_id": "i2", "ts": 1700000001.5, "dwell_ms": 800},
        {"event_id": "e4", "user_id": "u3", "item_id": "i1", "ts": 1700000000000},  # milliseconds
        {"event_id": "e5", "user_id": "u3", "item_id": "i3", "ts": 1700000002},
    ]
    stdin = "".join(json.dumps(x) + "\n" for x in lines).encode()
    done = t.run("-m", "streams", "produce", "clicks", stdin=stdin)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "line 2: missing_field: field 'user_id' is required" in err
    assert "line 4: bad_timestamp: " in err
    assert f"sent 3 records to {t.prefix}clicks; 2 invalid lines not sent" in done.stdout.decode()
    got = sorted(t.records("clicks"), key=lambda r: json.loads(r.value)["event_id"])
    assert [json.loads(r.value)["event_id"] for r in got] == ["e1", "e3", "e5"]
    assert [r.key for r in got] == [b"u1", b"u2", b"u3"]
    assert [r.value for r in got] == [json.dumps(lines[i]).encode() for i in (0, 2, 4)]  # sent as written
    assert all(r.partition == murmur2_partition(r.key) for r in got)


def _read_until(proc: subprocess.Popen[bytes], needle: bytes, count: int, timeout: float) -> bytes:
    """stdout of ``proc`` until ``needle`` was seen ``count`` times (or the process ended, or timeout)."""
    assert proc.stdout is not None
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(needle) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
    return buf


def test_socrec_tail_prints_records_for_people_and_follows_new_ones(broker: ManagedBroker) -> None:
    t = Topics(broker)
    t.send("recommendations", rec("alice", "items", "a"), rec("bob", "query", "b"))
    done = t.run("-m", "streams", "tail", "recommendations", "--from-beginning", "--max", "2")
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert out.count("recommendations[") == 2, out  # record headers: topic[partition]@offset
    assert f"user alice  kind items  model zero-shot  rec_id {'a' * 32}" in out
    assert f"user bob  kind query  model zero-shot  rec_id {'b' * 32}" in out
    assert out.count("1. post-1  0.910  liked by someone you follow") == 2

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams",
            "tail",
            "recommendations",
            "--from-beginning",
            "--max",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=t.env,
    )
    try:
        seen = _read_until(proc, b"recommendations[", 2, RUN_TIMEOUT_S)
        assert seen.count(b"recommendations[") == 2, seen
        t.send("recommendations", rec("carol", "items", "c"))  # after it has read what was there
        seen += _read_until(proc, b"recommendations[", 1, RUN_TIMEOUT_S)
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0
        assert f"user carol  kind items  model zero-shot  rec_id {'c' * 32}".encode() in seen
    finally:
        if proc.poll() is None:
            proc.kill()

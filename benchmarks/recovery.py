"""``socrec bench recovery``: how long a killed worker takes to serve again, by changelog size.

For each size N: a fresh topic prefix and consumer group on one broker; a worker is started once
(it creates its topics and compacted changelogs) and stopped; N records are then written straight
into the ``social`` table's changelog (N users, each following one other: the values the engine
itself writes, placed by the same murmur2 partitioner as the worker's own writes); then the
worker is started (it reads the whole changelog back and rebuilds its engine), killed with
SIGKILL, and started again. Reported per size: seconds from the start to ready (every table
recovered, the engine restored, the agent about to consume) for the first start and after the
kill -9. The second includes the wait for the group to drop the killed member
(``SOCREC_KAFKA_SESSION_TIMEOUT_S``), as a real crash does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaProducer

from benchmarks.harness.rig import Rig
from socrec_online.brokers import make_broker
from socrec_online.service.state import RecentIds, SocialState
from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs

SEND_CHUNK = 20_000


def social_value(i: int, ts: float) -> dict[str, Any]:
    """The engine's ``social`` table value of user ``u{i}`` after one follow of ``u{i+1}``."""
    return SocialState({f"u{i + 1}": ts}, {}, RecentIds(1, [f"f{i}"]), ts).to_json()


async def fill_changelog(settings: Settings, topic: str, n: int) -> float:
    """Write ``n`` keys to ``topic`` (keys placed like the worker's); returns the seconds it took."""
    t0 = time.monotonic()
    ts = time.time() - 3600.0
    producer = AIOKafkaProducer(**kafka_client_kwargs(settings), linger_ms=20, max_batch_size=1 << 20, acks=1)
    await producer.start()
    try:
        for lo in range(0, n, SEND_CHUNK):
            futs = [
                await producer.send(topic, key=f"u{i}".encode(), value=orjson.dumps(social_value(i, ts)))
                for i in range(lo, min(n, lo + SEND_CHUNK))
            ]
            await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.monotonic() - t0


def _rss(pid: int | None) -> int | None:
    """Resident bytes of the worker and its children (the engine process)."""
    if pid is None:
        return None
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        return int(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
    return None


def _one_size(broker_bootstrap: str, kind: str, workdir: Path, n: int, text_model: Path | None) -> dict[str, Any]:
    prefix = f"rc{n}."
    rig = Rig(broker_bootstrap, workdir / prefix.strip("."), prefix, text_model=text_model,
              partitions=4, broker_kind=kind, loglevel="WARNING")  # fmt: skip
    try:
        asyncio.run(rig.ensure_topics())
        rig.start()
        rig.stop()
        changelog = f"{rig.env['SOCREC_APP_ID']}-social-changelog"
        fill_s = asyncio.run(fill_changelog(rig.settings, changelog, n))
        first = rig.start(timeout=3600)
        rss = _rss(rig.pid)
        rig.kill()
        after_kill = rig.start(timeout=3600)
        return {
            "changelog_records": n,
            "fill_seconds": round(fill_s, 1),
            "recovery_seconds_first_start": round(first, 1),
            "recovery_seconds_after_kill": round(after_kill, 1),
            "worker_rss_mib": round(rss / 2**20, 1) if rss else None,
        }
    finally:
        rig.stop()


def run_bench(*, sizes: list[int], tiny_model: bool = True, out: Path | None = None) -> int:
    """Run every size on one broker; write JSON to ``out`` and print one line per size."""
    workdir = Path(tempfile.mkdtemp(prefix="socrec-bench-recovery-"))
    settings = Settings()
    text_model: Path | None = None
    if tiny_model:
        from socrec_online.models.text import make_tiny_bert

        text_model = Path(make_tiny_bert(workdir / "tiny_bert"))
    broker = make_broker(settings.broker, data_dir=workdir / "kafka", log_path=workdir / "broker.log")
    result: dict[str, Any] = {
        "broker": broker.name,
        "broker_version": broker.version,
        "session_timeout_s": settings.kafka_session_timeout_s,
        "cpu_count": os.cpu_count(),
        "text_model": "tiny" if tiny_model else "default",
        "sizes": [],
    }
    with contextlib.closing(broker.start()):
        for n in sizes:
            row = _one_size(broker.bootstrap, settings.broker, workdir, n, text_model)
            result["sizes"].append(row)
            print(json.dumps(row), flush=True)
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
    return 0

"""The backlog phases of ``socrec bench throughput`` (``passthrough``, ``throughput``, ``two-workers``):
a backlog drained by one app's worker processes, sustained events/s from their own counters; and the
environment every phase's workers run with."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.cores import cpu_all
from socrec_online.broker import free_port
from socrec_online.brokers import ManagedBroker
from socrec_online.events import Event
from socrec_online.settings import Settings
from streams.admin import ensure_topics
from streams.observe import scrape, wait_assigned, wait_drained
from streams.procs import WorkerProcess
from streams.replay import EventProducer, produce
from streams.topics import required_topics

DRAIN_POLL_S = 0.5  # /metrics scrapes cost the worker CPU too: no more often than the series needs


def worker_env(broker: ManagedBroker, workdir: Path, prefix: str, device: str) -> dict[str, str]:
    """The SOCREC_* environment of one phase's workers: its own topic prefix, consumer group and ports."""
    return {
        "SOCREC_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SOCREC_BROKER": broker.kind,
        "SOCREC_TOPIC_PREFIX": prefix,
        "SOCREC_APP_ID": f"bench-{prefix.strip('.')}",
        "SOCREC_METRICS_PORT": str(free_port()),
        "SOCREC_WEB_PORT": str(free_port()),
        "SOCREC_DATA_DIR": str(workdir / prefix.strip(".")),
        "SOCREC_DEVICE": device,
        "SOCREC_SNAPSHOT_DIR": str(workdir / "snapshots"),  # benchmarks.model fills it (or not)
    }


def phase_settings(env: dict[str, str]) -> Settings:
    """The settings of a phase: its environment is also this process's (the bench's clients read it)."""
    os.environ.update(env)
    return Settings()


def _sustained(samples: list[tuple[float, float]], target: float) -> float:
    """events/s between 10 % and 90 % of ``target`` done."""
    lo = next(((t, d) for t, d in samples if d >= 0.1 * target), None)
    hi = next(((t, d) for t, d in samples if d >= 0.9 * target), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        done = [(t, d) for t, d in samples if d > 0]
        if len(done) < 2 or done[-1][0] <= done[0][0]:
            return 0.0
        return (done[-1][1] - done[0][1]) / (done[-1][0] - done[0][0])
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


async def backlog_phase(
    broker: ManagedBroker,
    workdir: Path,
    prefix: str,
    device: str,
    events: list[Event],
    passthrough: bool,
    workers: int = 1,
) -> dict[str, Any]:
    """Drain a backlog with ``workers`` processes of one app (one consumer group: the partitions
    spread over them); events/s is the sum of their counters. The backlog is written once the group
    is stable (every worker has partitions), so no phase pays for a rebalance in its middle."""
    env = worker_env(broker, workdir, prefix, device)
    settings = phase_settings(env)
    await ensure_topics(settings, required_topics(settings, passthrough=passthrough))
    envs = [env] + [
        {**env, "SOCREC_METRICS_PORT": str(free_port()), "SOCREC_WEB_PORT": str(free_port()),
         "SOCREC_DATA_DIR": f"{env['SOCREC_DATA_DIR']}-{i}"}
        for i in range(1, workers)
    ]
    procs = [
        WorkerProcess(e, passthrough=passthrough, log_path=workdir / f"{prefix.strip('.')}-{i}.log")
        for i, e in enumerate(envs)
    ]
    ports = [int(e["SOCREC_METRICS_PORT"]) for e in envs]
    for w in procs:
        w.start()
    try:
        t0 = time.monotonic()
        for w in procs:
            await asyncio.to_thread(w.wait_ready, 600)
        ready_s = time.monotonic() - t0
        settle_s = await wait_assigned(ports, settings.partitions)
        cpu0 = cpu_all([w.pid for w in procs], broker.pid)
        t_produce = time.monotonic()
        async with EventProducer(settings) as producer:
            sent = await produce(producer, events, 0.0)
        produce_s = time.monotonic() - t_produce
        done, samples = await wait_drained(ports, sent.sent, idle_timeout=60, poll=DRAIN_POLL_S)
        cpu1 = cpu_all([w.pid for w in procs], broker.pid)
        scrapes = [await asyncio.to_thread(scrape, p) for p in ports]
        final = {k: sum(sc.get(k, 0.0) for sc in scrapes) for k in scrapes[0]}
        per_worker = [round(sum(v for k, v in sc.items() if k.startswith("socrec_events_total{"))) for sc in scrapes]
    finally:
        for w in procs:
            await asyncio.to_thread(w.stop)
    t_start = samples[0][0]
    cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in cpu1.items()}
    batches = final.get("socrec_batch_events_count", 0.0)
    return {
        "events": sent.sent,
        "processed": int(done),
        "events_per_s": _sustained(samples, sent.sent),
        "startup_s": ready_s,
        "group_settle_s": round(settle_s, 2),
        # the backlog is written while the workers already read it: a rate near events / produce_s
        # would be the producer's, not the workers'
        "produce_s": round(produce_s, 2),
        "workers": workers,
        "events_per_worker": per_worker,
        # where the cores went while the backlog drained (wall-clock figures depend on the machine's load)
        "cpu_seconds": cpu,
        # the same per 1,000 events: comparable across runs of different speed (less so across loads)
        "cpu_ms_per_event": {k: round(1000.0 * v / max(done, 1.0), 3) for k, v in cpu.items()},
        "batches": int(batches),
        "mean_batch_events": round(final.get("socrec_batch_events_sum", 0.0) / batches, 1) if batches else None,
        "recommendations": int(
            sum(v for k, v in final.items() if k.startswith("socrec_recommendations_total{"))
        ),
        "series": [(round(t - t_start, 3), d) for t, d in samples],
        "stage_seconds": {
            k.split('stage="')[1].rstrip('"}'): v
            for k, v in final.items()
            if k.startswith("socrec_stage_duration_seconds_sum{")
        },
    }


__all__ = [
    "DRAIN_POLL_S",
    "backlog_phase",
    "phase_settings",
    "worker_env",
]

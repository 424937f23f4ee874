"""The latency half of ``socrec bench online``: does a fine-tuning trainer slow the worker down?

Real processes on the embedded broker: one worker, and the trainer as a separate process (as
in ``socrec demo`` and docker/compose.yaml). Steps:

1. warm-up: catalogue/graph burst, then interactions at ``rate`` with the trainer running until
   it has published a first snapshot and the worker serves it (both phases then score with the
   same kind of model);
2. ``idle``: the trainer is stopped; ``events`` interactions at ``rate`` events/s;
3. ``during``: the trainer is started again with a trigger of 500 events, so it fine-tunes
   about half of the time (``finetune_busy_share``); the next ``events`` interactions at the same
   rate. Snapshots it publishes are hot-swapped by the worker meanwhile.

Latency = Kafka timestamp of the recommendation - the event's ts (wall clock at send), per
source event. ``p99_ms_during_finetune`` counts the events sent while a fine-tune ran (the
trainer logs each run's wall-clock interval); ``p99_ms_idle`` the idle phase's;
``p99_ms_between_finetunes`` the events of phase 3 sent while no fine-tune ran, interleaved in
time with the former, so outside load (this machine is shared) hits both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from socrec_online.broker import free_port
from socrec_online.brokers import ManagedBroker, make_broker
from socrec_online.data import load_dataset
from socrec_online.events import Event
from socrec_online.settings import Settings
from streams.admin import ensure_topics
from streams.observe import OutputWatcher, percentiles_ms, scrape, wait_drained
from streams.procs import WorkerProcess
from streams.replay import EventProducer, produce, split_stream
from streams.topics import required_topics
from streams.trainer import TrainerProcess

WARMUP_MAX_EVENTS = 6000


def _env(broker: ManagedBroker, workdir: Path, device: str, steps: int) -> dict[str, str]:
    return {
        "SOCREC_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SOCREC_BROKER": broker.kind,
        "SOCREC_TOPIC_PREFIX": "bo.",
        "SOCREC_APP_ID": "bench-online",
        "SOCREC_TRAINER_APP_ID": "bench-online-trainer",
        "SOCREC_METRICS_PORT": str(free_port()),
        "SOCREC_TRAINER_METRICS_PORT": str(free_port()),
        "SOCREC_WEB_PORT": str(free_port()),
        "SOCREC_DATA_DIR": str(workdir / "data"),
        "SOCREC_SNAPSHOT_DIR": str(workdir / "snapshots"),
        "SOCREC_DEVICE": device,
        "SOCREC_FINETUNE_EVERY_EVENTS": "500",
        "SOCREC_FINETUNE_MIN_EVENTS": "50",
        "SOCREC_FINETUNE_MIN_PAIRS": "200",
        "SOCREC_FINETUNE_STEPS": str(steps),
    }


_RUN = re.compile(r"fine-tune (\w+) \(\w+\) in [0-9.]+s \[([0-9.]+), ([0-9.]+)\]")


def _finetune_intervals(log_path: Path) -> list[tuple[float, float]]:
    """[start, end] wall-clock intervals of the trainer's non-skipped fine-tunes, from its log."""
    if not log_path.exists():
        return []
    out = []
    for m in _RUN.finditer(log_path.read_text(errors="replace")):
        if m.group(1) != "skipped":
            out.append((float(m.group(2)), float(m.group(3))))
    return out


async def _bench(
    events: int, rate: float, dataset: str, data_dir: str | None, device: str, steps: int, workdir: Path
) -> dict[str, Any]:
    ds = load_dataset(dataset, data_dir=data_dir)
    head, rest_it = split_stream(ds)
    stream: list[Event] = []
    for ev in rest_it:
        stream.append(ev)
        if len(stream) >= WARMUP_MAX_EVENTS + 2 * events:
            break
    broker = make_broker(Settings().broker, data_dir=workdir / "kafka", log_path=workdir / "broker.log")
    with contextlib.closing(broker.start()):
        env = _env(broker, workdir, device, steps)
        os.environ.update(env)  # the producer / watcher settings below
        settings = Settings()
        await ensure_topics(settings, required_topics(settings))
        worker = WorkerProcess(env, log_path=workdir / "worker.log").start()
        trainer: TrainerProcess | None = None
        phase = {"name": ""}
        sent: dict[str, tuple[str, float]] = {}
        lat: dict[str, list[float]] = {"idle": [], "during": []}
        lat_ts: dict[str, list[tuple[float, float]]] = {"idle": [], "during": []}
        versions: dict[str, set[str]] = {"warmup": set(), "idle": set(), "during": set()}

        def on_rec(p: dict[str, Any], published: float) -> None:
            src = sent.get(p.get("source_event_id") or "")
            if src is None or p.get("kind") != "items":
                return
            name, ts = src
            versions.setdefault(name, set()).add(str(p.get("model_version")))
            if name in lat:
                lat[name].append(published - ts)
                lat_ts[name].append((ts, published - ts))

        def on_sent(ev: Event) -> None:
            sent[ev.event_id] = (phase["name"], ev.ts)

        try:
            await asyncio.to_thread(worker.wait_ready, 600)
            watcher = OutputWatcher(settings, on_rec)
            await watcher.start()
            port = int(env["SOCREC_METRICS_PORT"])
            tport = int(env["SOCREC_TRAINER_METRICS_PORT"])
            pos = 0
            async with EventProducer(settings) as producer:
                boot = await produce(producer, head, 0.0)
                await wait_drained(port, boot.sent, idle_timeout=120)
                done = boot.sent
                # 1. warm-up until the worker serves a trained snapshot
                trainer = TrainerProcess(env, log_path=workdir / "trainer.log", loglevel="INFO")
                trainer.start()
                await asyncio.to_thread(trainer.wait_ready, 600)
                phase["name"] = "warmup"
                t_warm = time.monotonic()
                while pos < WARMUP_MAX_EVENTS and not any(v != "zero-shot" for v in versions["warmup"]):
                    chunk = stream[pos : pos + int(rate)]
                    pos += len(chunk)
                    done += (await produce(producer, chunk, rate, on_sent=on_sent)).sent
                warmup_s = time.monotonic() - t_warm
                served = sorted(v for v in versions["warmup"] if v != "zero-shot")
                await asyncio.to_thread(trainer.stop)
                trainer = None
                await wait_drained(port, done, idle_timeout=60)
                # 2. idle: no trainer at all
                phase["name"] = "idle"
                t0 = time.monotonic()
                done += (await produce(producer, stream[pos : pos + events], rate, on_sent=on_sent)).sent
                pos += events
                await wait_drained(port, done, idle_timeout=60)
                idle_s = time.monotonic() - t0
                # 3. during: the trainer fine-tunes back to back
                trainer = TrainerProcess(env, log_path=workdir / "trainer-2.log", loglevel="INFO")
                trainer.start()
                await asyncio.to_thread(trainer.wait_ready, 600)
                before = await asyncio.to_thread(scrape, tport)
                phase["name"] = "during"
                t0 = time.monotonic()
                done += (await produce(producer, stream[pos : pos + events], rate, on_sent=on_sent)).sent
                await wait_drained(port, done, idle_timeout=60)
                during_s = time.monotonic() - t0
                after = await asyncio.to_thread(scrape, tport)
            await asyncio.sleep(1.0)
            await watcher.stop()
        finally:
            if trainer is not None:
                await asyncio.to_thread(trainer.stop)
            await asyncio.to_thread(worker.stop)

    def delta(name: str) -> float:
        return float(after.get(name, 0.0) - before.get(name, 0.0))

    busy = delta("socrec_finetune_duration_seconds_sum")
    runs = _finetune_intervals(workdir / "trainer-2.log")
    in_ft = [x for ts, x in lat_ts["during"] if any(a <= ts <= b for a, b in runs)]
    # the same phase's events sent while no fine-tune ran: interleaved in time with in_ft, so load
    # from outside the benchmark hits both alike (a fairer A/B than two phases on a shared box)
    between = [x for ts, x in lat_ts["during"] if not any(a <= ts <= b for a, b in runs)]
    between_p = percentiles_ms(between)
    idle_p = percentiles_ms(lat["idle"])
    during_p = percentiles_ms(in_ft)
    phase_p = percentiles_ms(lat["during"])
    p99_idle, p99_during, p99_between = idle_p.get("p99"), during_p.get("p99"), between_p.get("p99")
    return {
        "p99_ms_idle": p99_idle,
        "p99_ms_during_finetune": p99_during,
        "p99_ratio": round(p99_during / p99_idle, 3) if p99_idle and p99_during else None,
        "latency_ms_idle": idle_p,
        "latency_ms_during_finetune": during_p,
        "latency_ms_trainer_phase": phase_p,  # the whole phase: fine-tunes, hot swaps, trainer consuming
        "p99_ms_between_finetunes": p99_between,
        "p99_ratio_interleaved": round(p99_during / p99_between, 3) if p99_during and p99_between else None,
        "latency_ms_between_finetunes": between_p,
        "latency_samples": {
            "idle": len(lat["idle"]), "during_finetune": len(in_ft), "between_finetunes": len(between),
            "trainer_phase": len(lat["during"]),
        },
        "rate": rate,
        "events_per_phase": events,
        "dataset": dataset,
        "warmup_seconds": round(warmup_s, 1),
        "first_snapshot_served": served[0] if served else None,
        "finetune_runs_during": {
            o: delta(f'socrec_finetune_runs_total{{outcome="{o}"}}') for o in ("published", "rejected", "failed")
        },
        "finetune_busy_share": round(min(1.0, busy / during_s), 3) if during_s > 0 else None,
        "versions_served_during": sorted(versions["during"]),
        "phase_seconds": {"idle": round(idle_s, 1), "during": round(during_s, 1)},
        "cpu_count": os.cpu_count(),
        "load_avg_end": os.getloadavg()[0],
    }


def run_latency(
    events: int = 3000,
    rate: float = 100.0,
    out: Path | None = None,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    device: str = "cpu",
    steps: int = 30,
) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="socrec-bench-online-"))
    try:
        result = asyncio.run(_bench(events, rate, dataset, data_dir, device, steps, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)
    return 0

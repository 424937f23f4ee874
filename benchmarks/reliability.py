"""``socrec bench reliability``: crashes, poison, boundary and fuzz inputs, sustained load.

The worker is a black box driven through :class:`~benchmarks.harness.rig.Rig` (the tests drive the same rig).

Scenarios (each returns plain JSON-able figures; the tests assert on them, the bench prints them):

- :func:`~benchmarks.crashes.crash_scenario`: a stream whose event ids carry per-partition sequence numbers is
  produced at a fixed rate while the worker is ``kill -9``-ed at random points; after the last
  restart the worker's table state must equal a *replay oracle* (a fresh engine fed every
  record read back from the source topics): 0 differing keys, 0 lost, 0 doubled.
- :func:`~benchmarks.crashes.graceful_scenario`: SIGTERM under load: exit time, committed offsets against what the
  changelog says was applied, then a restart and the same oracle comparison.
- :func:`~benchmarks.poison.poison_scenario`: bad records of every kind interleaved with good ones:
  every bad one in ``dead-letters`` with its reason and origin, every good one applied, the
  same worker process throughout.
- :func:`~benchmarks.load.load_scenario`: a fixed rate for a bounded duration over a bounded key space: lag,
  drain time, resident memory growth after warm-up, end-to-end latency percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import hostile
from benchmarks.crashes import crash_scenario
from benchmarks.harness.rig import Rig
from benchmarks.harness.streams import make_stream
from benchmarks.load import load_scenario
from benchmarks.poison import answered_stream, poison_scenario
from benchmarks.reliability_report import plot as draw
from benchmarks.reliability_report import print_table
from socrec_online.brokers import make_broker
from socrec_online.settings import Settings
from streams.observe import percentiles


def _tiny_model(workdir: Path) -> Path:
    from socrec_online.models.text import make_tiny_bert

    return Path(make_tiny_bert(workdir / "tiny_bert"))


async def _bench(
    *, kills: int, events: int, duration_s: float, rate: float, load_rate: float, bad: int,
    fuzz_seconds: int, workdir: Path, text_model: Path | None, log: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    oracle_model = _tiny_model(workdir)  # the oracle only needs tables, not embeddings
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    log("boundary cases through the service path, in process")
    bounds = await asyncio.to_thread(hostile.run_boundaries, Settings(device="cpu"), oracle_model)
    fuzz: dict[str, Any] | None = None
    if fuzz_seconds > 0:
        log(f"fuzzing the service path for {fuzz_seconds} s")
        fuzz = await asyncio.to_thread(hostile.run_fuzz, fuzz_seconds, workdir)
    kind = Settings().broker
    broker = make_broker(kind, data_dir=workdir / "kafka", log_path=workdir / "broker.log")
    result.update({"broker": broker.name, "broker_version": broker.version})
    with contextlib.closing(broker.start()):
        log(f"crash recovery: {kills} x kill -9 over {events} events at {rate:.0f}/s")
        crash_rig = Rig(broker.bootstrap, workdir / "crash", "crash.", text_model=text_model, broker_kind=kind)
        try:
            stream = make_stream(events, partitions=3, seed=1)
            crash = await crash_scenario(
                crash_rig, stream, kills=kills, rate=rate, seed=1, oracle_model=oracle_model,
                kill_after_s=(1.0, 8.0), log=log,
            )  # fmt: skip
        finally:
            await asyncio.to_thread(crash_rig.stop)
        log(f"poison: {bad} bad records")
        poison_rig = Rig(broker.bootstrap, workdir / "poison", "poison.", text_model=text_model, broker_kind=kind)
        try:
            good = answered_stream(max(200, bad // 5), seed=2, tag="pg")  # each answer checkable
            poison = await poison_scenario(poison_rig, good, bad, seed=2, timeout=600)
        finally:
            await asyncio.to_thread(poison_rig.stop)
        log(f"sustained load: {load_rate:.0f} events/s for {duration_s:.0f}s")
        load_rig = Rig(broker.bootstrap, workdir / "load", "load.", text_model=text_model, broker_kind=kind)
        try:
            load = await load_scenario(load_rig, rate=load_rate, duration_s=duration_s, log=log)
        finally:
            await asyncio.to_thread(load_rig.stop)
    rec = crash["recovery_seconds"]
    result.update({
        "kills": kills,
        "events": crash["events"],
        "lost": crash["lost"],
        "doubled": crash["doubled"],
        "recommendations": crash["recommendations"],
        "duplicate_recommendations": crash["duplicate_recommendations"],
        "differing_keys": crash["differing_keys"],
        "bad_inputs": poison["bad_inputs"],
        "dead_lettered": poison["dead_lettered"],
        "dead_letters_repeated": poison["dead_letters_repeated"],
        "good_answered": poison["good_answered"],
        "good_answerable": poison["good_answerable"],
        "agent_restarts": poison["agent_restarts"],
        "recovery_seconds_p95": round(float(percentiles(rec, (95,))["p95"]), 2) if rec else None,
        "rss_growth_ratio": round(load["rss_growth_ratio"], 3) if load["rss_growth_ratio"] else None,
        "crash": crash,
        "poison": poison,
        "load": {k: v for k, v in load.items() if k != "series"},
        "load_series": load["series"],
        "load_avg_end": os.getloadavg()[0],
        **hostile.summary(bounds, fuzz, poison, load),
        "boundaries": bounds,
        "fuzz": fuzz,
    })  # fmt: skip
    return result


def run_bench(
    *,
    kills: int = 10,
    events: int = 20000,
    duration_s: float = 300.0,
    rate: float = 200.0,
    load_rate: float = 200.0,
    bad: int = 5000,
    fuzz_seconds: int = 60,
    tiny_model: bool = False,
    out: Path | None = None,
    plot: Path | None = None,
) -> int:
    """Run the long variants; write the DESIGN.md JSON keys to ``out`` and print a table."""
    workdir = Path(tempfile.mkdtemp(prefix="socrec-bench-rel-"))
    text_model = _tiny_model(workdir) if tiny_model else None

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    prev = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop children on SIGTERM too
    try:
        result = asyncio.run(
            _bench(
                kills=kills, events=events, duration_s=duration_s, rate=rate, load_rate=load_rate,
                bad=bad, fuzz_seconds=fuzz_seconds, workdir=workdir, text_model=text_model, log=log,
            )
        )
    except BaseException:
        print(f"bench failed; logs in {workdir}")
        raise
    finally:
        signal.signal(signal.SIGTERM, prev)
    result["text_model"] = "tiny random BERT" if tiny_model else "all-MiniLM-L6-v2"
    series = result.pop("load_series", [])
    if plot is not None:
        draw(series, result, plot)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    print_table(result)
    ok = result["lost"] == 0 and result["doubled"] == 0 and result["differing_keys"] == 0
    ok = ok and result["dead_lettered"] == result["bad_inputs"] and result["agent_restarts"] == 0
    ok = ok and result["dead_letters_repeated"] == 0 and result["good_answered"] == result["good_answerable"]
    ok = ok and hostile.passed(result)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"worker logs kept in {workdir}")
    return 0 if ok else 1


__all__ = [
    "run_bench",
]

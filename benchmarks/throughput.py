"""``socrec bench throughput``: the service measured through a real broker (SOCREC_BROKER), in one run.

Phases (each on its own topic prefix and consumer group, same broker, real worker processes):

1. ``passthrough``: a backlog of ``events`` records, drained by the pass-through agent (decode,
   validate, re-publish): the ceiling Faust + Kafka + JSON set on this machine.
2. ``throughput``: the same backlog drained by the full pipeline (graph, text tower,
   incremental propagation, scoring, publishing). Sustained events/s is measured between 10 %
   and 90 % of the backlog (start-up and tail excluded) from the worker's own
   ``socrec_events_total``. ``two-workers``: the same with two worker processes of one app.
   Each backlog is written once the phase's workers are ready and their group is stable.
3. ``latency``: a worker already caught up; the catalogue/graph burst, then ``latency_events``
   interactions at ``rate`` events/s stamped with the wall clock; latency = Kafka timestamp of the
   recommendation - event ts. Item freshness probes run meanwhile: a new item, then a query
   with its text every 100 ms until an answer contains the item; freshness = that answer's
   publish time - the item event's ts (an upper bound, 100 ms resolution). With ``api`` (the
   default) the worker serves its read API (docs/api.md) and ``API_CLIENTS`` clients GET the
   recommendations of random users of the catalogue/graph burst throughout the live part:
   ``api_get_p50_ms``, ``api_get_p99_ms`` (client-side, over loopback HTTP) and ``api_gets``.

The phases are in :mod:`benchmarks.backlog` and :mod:`benchmarks.latency_phase`, the CPU samples of
each process in :mod:`benchmarks.cores`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any

from benchmarks.backlog import backlog_phase
from benchmarks.latency_phase import latency_phase
from benchmarks.model import prepare_snapshots
from benchmarks.swaps import SWAP_EVERY_S
from socrec_online.brokers import make_broker
from socrec_online.data import load_dataset
from socrec_online.settings import Settings
from streams.observe import percentiles_ms
from streams.replay import split_stream


async def _bench(
    events: int, rate: float, latency_events: int, device: str, phases: list[str], workdir: Path, api: bool = True,
    model: str = "zero-shot", snapshot: Path | None = None,
) -> dict[str, Any]:
    model_info = prepare_snapshots(model, snapshot, workdir / "snapshots")
    ds = load_dataset("synthetic", seed=0)
    head, rest = split_stream(ds)
    interactions = list(islice(rest, max(events, latency_events)))
    backlog = (head + interactions)[:events]
    result: dict[str, Any] = {
        "device": device,
        "events": events,
        "rate": rate,
        "latency_events": latency_events,
        "cpu_count": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0],
        "model": model if snapshot is None else "snapshot",
        "model_setup": model_info,
    }
    broker = make_broker(Settings().broker, data_dir=workdir / "kafka", log_path=workdir / "broker.log")
    result.update({"broker": broker.name, "broker_version": broker.version})
    with contextlib.closing(broker.start()):
        if "passthrough" in phases:
            pt = await backlog_phase(broker, workdir, "pt.", device, backlog, passthrough=True)
            result["passthrough_events_per_s"] = round(pt["events_per_s"], 1)
            result["passthrough"] = pt
        if "throughput" in phases:
            tp = await backlog_phase(broker, workdir, "tp.", device, backlog, passthrough=False)
            result["events_per_s"] = round(tp["events_per_s"], 1)
            result["throughput"] = tp
        if "two-workers" in phases:
            # same backlog, two worker processes of one app: the scale-out path (docs/architecture.md, 'Scale-out')
            two = await backlog_phase(broker, workdir, "tw.", device, backlog, passthrough=False, workers=2)
            result["two_workers"] = two
            result["two_workers_events_per_s"] = round(two["events_per_s"], 1)
            if result.get("events_per_s"):
                result["two_workers_ratio"] = round(two["events_per_s"] / result["events_per_s"], 3)
        if "latency" in phases:
            lat = await latency_phase(
                broker, workdir, device, head, interactions[:latency_events], rate, api,
                swap_every_s=SWAP_EVERY_S if model_info.get("snapshot") else None,
            )  # fmt: skip
            if api:
                gets = percentiles_ms(lat["api_get_s"])
                result.update(api_get_p50_ms=gets.get("p50"), api_get_p99_ms=gets.get("p99"),
                              api_gets=len(lat["api_get_s"]))  # fmt: skip
            result["latency_ms"] = percentiles_ms(lat["latency_s"])
            fresh = lat["freshness_s"]
            result["item_freshness_ms"] = round(max(fresh) * 1000.0, 1) if fresh else None
            result["item_freshness"] = {
                **percentiles_ms(fresh),
                "max": round(max(fresh) * 1000.0, 1) if fresh else None,
                "probes": lat["probes"],
                "missed": lat["probes_missed"],
            }
            result["query_latency_ms"] = percentiles_ms(lat["query_latency_s"])
            result["served_models"] = lat["served_models"]
            if lat["swaps"]["announced"]:
                result["hot_swaps"] = lat["swaps"]
                result["latency_across_swaps_ms"] = percentiles_ms(lat["latency_across_swaps_s"])
                result["latency_outside_swaps_ms"] = percentiles_ms(lat["latency_outside_swaps_s"])
            result["latency"] = {k: v for k, v in lat.items() if not k.endswith("_s")}
            result["latency_samples_ms"] = [round(x * 1000.0, 2) for x in lat["latency_s"]]
    if result.get("events_per_s") and result.get("passthrough_events_per_s"):
        result["ratio"] = round(result["events_per_s"] / result["passthrough_events_per_s"], 3)
    result["load_avg_end"] = os.getloadavg()[0]
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in ("passthrough", "throughput"):
        series = result.get(name, {}).get("series")
        if series:
            a.plot([t for t, _ in series], [d for _, d in series], label=f"{name}")
    a.set_xlabel("seconds since worker start")
    a.set_ylabel("events processed")
    a.set_title("backlog drain")
    a.legend()
    lat = result.get("latency_samples_ms") or []
    if lat:
        b.hist(lat, bins=60)
        for q, v in (result.get("latency_ms") or {}).items():
            b.axvline(v, linestyle="--", color="k", linewidth=0.8)
            b.text(v, b.get_ylim()[1] * 0.9, q, rotation=90)
    b.set_xlabel("event ts -> recommendation published (ms)")
    b.set_title(f"latency at {result.get('rate')} events/s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run_bench(
    *,
    events: int = 20000,
    rate: float = 500.0,
    latency_events: int = 10000,
    device: str = "auto",
    out: Path | None = None,
    plot: Path | None = None,
    phases: list[str] | None = None,
    api: bool = True,
    model: str = "zero-shot",
    snapshot: Path | None = None,
) -> int:
    from socrec_online.devices import resolve_device

    resolved = str(resolve_device(device))
    workdir = Path(tempfile.mkdtemp(prefix="socrec-bench-"))
    try:
        result = asyncio.run(
            _bench(
                events,
                rate,
                latency_events,
                resolved,
                phases or ["passthrough", "throughput", "latency"],
                workdir,
                api,
                model,
                snapshot,
            )
        )
    except BaseException:
        print(f"bench failed; logs in {workdir}")
        raise
    samples = result.pop("latency_samples_ms", [])
    if plot is not None:
        _plot({**result, "latency_samples_ms": samples}, plot)
    for phase in ("passthrough", "throughput"):
        result.get(phase, {}).pop("series", None) if plot is None else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    _print_table(result)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _print_table(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"socrec bench throughput (device {r.get('device')}, {r.get('cpu_count')} CPUs)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_row("model served (recommendations)", ", ".join(f"{v} ({n})" for v, n in (r.get("served_models") or {}).items()), "")
    t.add_row("full pipeline events/s", f"{r.get('events_per_s', '-')}", ">= 2000")
    tp = r.get("throughput") or {}
    cpu = tp.get("cpu_ms_per_event") or {}
    if cpu:
        t.add_row(
            "CPU ms/event worker / engine / broker",
            " / ".join(str(cpu.get(k, "-")) for k in ("worker", "engine", "broker")),
            "",
        )
        t.add_row("mean micro-batch (events)", f"{tp.get('mean_batch_events', '-')}", "")
    t.add_row("pass-through events/s", f"{r.get('passthrough_events_per_s', '-')}", "")
    if "two_workers_events_per_s" in r:
        t.add_row("two workers events/s (ratio to one)",
                  f"{r['two_workers_events_per_s']} ({r.get('two_workers_ratio', '-')})", "> 1x")
    t.add_row("ratio", f"{r.get('ratio', '-')}", "")
    lat = r.get("latency_ms") or {}
    t.add_row(
        f"latency ms at {r.get('rate')} ev/s (p50/p95/p99)",
        "/".join(str(lat.get(k, "-")) for k in ("p50", "p95", "p99")),
        "p99 <= 250",
    )
    if "hot_swaps" in r:
        sw, xs = r["hot_swaps"], r.get("latency_across_swaps_ms") or {}
        os_ = r.get("latency_outside_swaps_ms") or {}
        t.add_row(
            f"latency ms across {sw['served']}/{sw['announced']} hot swaps / outside them (p50/p99)",
            f"{xs.get('p50', '-')}/{xs.get('p99', '-')} / {os_.get('p50', '-')}/{os_.get('p99', '-')}",
            "p99 <= 250",
        )
    q = r.get("query_latency_ms") or {}
    t.add_row(
        "query latency ms (p50/p95/p99)", "/".join(str(q.get(k, "-")) for k in ("p50", "p95", "p99")), ""
    )
    if "api_gets" in r:
        t.add_row(
            "read API GET ms during the live part (p50/p99, GETs)",
            f"{r.get('api_get_p50_ms', '-')}/{r.get('api_get_p99_ms', '-')} ({r['api_gets']})",
            "",
        )
    f = r.get("item_freshness") or {}
    t.add_row(
        "item freshness ms (p50 / max, probes, missed)",
        f"{f.get('p50', '-')} / {f.get('max', '-')} ({f.get('probes', 0)}, {f.get('missed', 0)})",
        "<= 1000",
    )
    cores = (r.get("latency") or {}).get("cores") or []
    if cores:
        first, last = cores[0], cores[-1]
        t.add_row(
            f"cores at {r.get('rate')} ev/s, first -> last interval: worker / engine / broker",
            " / ".join(f"{first.get(k, '-')} -> {last.get(k, '-')}" for k in ("worker", "engine", "broker")),
            "",
        )
    t.add_row(
        "load average at start / end", f"{r.get('load_avg_start'):.1f} / {r.get('load_avg_end'):.1f}", ""
    )
    Console().print(t)

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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from socrec_online.broker import free_port
from socrec_online.brokers import ManagedBroker, make_broker
from socrec_online.data import load_dataset
from socrec_online.events import Event, ItemPublished, Query
from socrec_online.settings import Settings
from streams.admin import ensure_topics
from benchmarks.model import prepare_snapshots
from streams.observe import OutputWatcher, percentiles_ms, scrape, wait_assigned, wait_drained
from streams.procs import WorkerProcess
from streams.replay import EventProducer, produce, split_stream
from streams.topics import required_topics

API_CLIENTS = 4
API_PAUSE_S = 0.05
"""Each API client waits this long between answers: ~4 x 20 GETs/s at most, a read load beside the events."""
API_TOKEN = "bench-read-api"
PROBE_EVERY_S = 2.0
PROBE_POLL_S = 0.1
PROBE_TIMEOUT_S = 5.0
DRAIN_POLL_S = 0.5  # /metrics scrapes cost the worker CPU too: no more often than the series needs
CPU_SAMPLE_S = 5.0
MIN_CPU_INTERVAL_S = 1.0
# The latency phase's consumer of recommendations: latency is read from each record's Kafka timestamp
# (when the worker published it), so how soon this consumer sees it is not part of the figure, and
# every fetch of a partition that returns data costs Tansu more the more record batches it holds.
# Measured, interleaved latency-phase runs: p99 230 / 216 / 220 / 215 / 269 ms at 250 ms against
# 289 / 271 / 285 / 181 / 277 at 50 ms, and 0.05-0.08 cores less broker CPU 15 s into the live part.
WATCH_FETCH_WAIT_MS = 250
_PROBE_WORDS = [
    "amber",
    "basalt",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "glacier",
    "harbor",
    "indigo",
    "jasper",
    "kelp",
    "lagoon",
    "meadow",
    "nebula",
    "obsidian",
    "prairie",
    "quartz",
    "reef",
    "savanna",
    "tundra",
    "umber",
    "volcano",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
]


def _env(broker: ManagedBroker, workdir: Path, prefix: str, device: str) -> dict[str, str]:
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


def _settings(env: dict[str, str]) -> Settings:
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


def _cpu_seconds(pid: int | None, broker_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far of the worker process, of its children (the engine process) and of the
    broker: on a small machine they share the cores, so each one's cost per event is the figure to cut."""
    import psutil

    if pid is None:
        return {}
    try:
        proc = psutil.Process(pid)
        out = {"worker": sum(proc.cpu_times()[:2])}
        out["engine"] = sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
        if broker_pid is not None:
            out["broker"] = sum(psutil.Process(broker_pid).cpu_times()[:2])
    except psutil.Error:
        return {}
    return out


def cores_series(samples: list[tuple[float, dict[str, float]]]) -> list[dict[str, float]]:
    """Cumulative CPU samples -> cores used by each process in each interval ("t": its end, seconds
    after the first sample). Why a series: the embedded broker's share grows through a live run (a
    fetch that returns data costs it more the more record batches the partition holds), and a mean
    over the run hides that."""
    out: list[dict[str, float]] = []
    if not samples:
        return out
    t0, c0 = samples[0]
    for t1, c1 in samples[1:]:
        dt = t1 - t0
        if dt < MIN_CPU_INTERVAL_S:
            continue  # CPU times tick in 10 ms: a sliver of an interval (the last) reads as nonsense
        row = {"t": round(t1 - samples[0][0], 1)}
        row.update({k: round((c1[k] - c0[k]) / dt, 3) for k in c1 if k in c0})
        out.append(row)
        t0, c0 = t1, c1
    return out


def _cpu_sample(pid: int | None, broker_pid: int | None) -> tuple[float, dict[str, float]]:
    """(now, cumulative CPU seconds of the worker, its engine, the broker and this process: the load
    generator and the recommendations consumer)."""
    import psutil

    cpu = _cpu_seconds(pid, broker_pid)
    cpu["bench"] = sum(psutil.Process().cpu_times()[:2])
    return time.monotonic(), cpu


async def _sample_cpu(
    pid: int | None, broker_pid: int | None, into: list[tuple[float, dict[str, float]]]
) -> None:
    while True:
        into.append(_cpu_sample(pid, broker_pid))
        await asyncio.sleep(CPU_SAMPLE_S)


def _cpu_all(pids: list[int | None], broker_pid: int | None) -> dict[str, float]:
    """_cpu_seconds summed over the worker processes (the broker counted once)."""
    out: dict[str, float] = {}
    for i, pid in enumerate(pids):
        for k, v in _cpu_seconds(pid, broker_pid if i == 0 else None).items():
            out[k] = out.get(k, 0.0) + v
    return out


async def _backlog_phase(
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
    env = _env(broker, workdir, prefix, device)
    settings = _settings(env)
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
        cpu0 = _cpu_all([w.pid for w in procs], broker.pid)
        t_produce = time.monotonic()
        async with EventProducer(settings) as producer:
            sent = await produce(producer, events, 0.0)
        produce_s = time.monotonic() - t_produce
        done, samples = await wait_drained(ports, sent.sent, idle_timeout=60, poll=DRAIN_POLL_S)
        cpu1 = _cpu_all([w.pid for w in procs], broker.pid)
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


async def _poll_api(port: int, users: list[str], seed: int, into: list[float], codes: dict[int, int]) -> None:
    """GET random users' lists until cancelled; each answer's wall time (seconds) goes ``into``."""
    import aiohttp

    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    url = f"http://127.0.0.1:{port}/v1/users/{{}}/recommendations"
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            t0 = time.perf_counter()
            async with session.get(url.format(rng.choice(users))) as resp:
                await resp.read()
            into.append(time.perf_counter() - t0)
            codes[resp.status] = codes.get(resp.status, 0) + 1
            await asyncio.sleep(API_PAUSE_S)


async def _latency_phase(
    broker: ManagedBroker,
    workdir: Path,
    device: str,
    head: list[Event],
    live: list[Event],
    rate: float,
    api: bool = True,
) -> dict[str, Any]:
    env = _env(broker, workdir, "lat.", device)
    if api:
        env["SOCREC_API_TOKEN"] = API_TOKEN
    settings = _settings(env)
    await ensure_topics(settings, required_topics(settings))
    worker = WorkerProcess(env, log_path=workdir / "lat.log").start()
    sent_ts: dict[str, float] = {}
    latencies: list[float] = []
    sent_at: list[float] = []  # send ts of each latencies entry: the series over time
    query_lat: list[float] = []
    probe_items: dict[str, float] = {}  # item id -> item event ts
    found: dict[str, float] = {}  # item id -> freshness seconds
    measuring = {"on": False}
    cpu_samples: list[tuple[float, dict[str, float]]] = []
    api_s: list[float] = []
    api_codes: dict[int, int] = {}
    users = sorted({u for ev in head if (u := getattr(ev, "user_id", None))})
    served: dict[str, int] = {}  # model_version -> recommendations carrying it

    def on_rec(p: dict[str, Any], published: float) -> None:
        src = sent_ts.get(p.get("source_event_id") or "")
        kind = p.get("kind")
        version = str(p.get("model_version"))
        served[version] = served.get(version, 0) + 1
        if src is not None and measuring["on"]:
            if kind == "items":
                latencies.append(published - src)
                sent_at.append(src)
            elif kind == "query":
                query_lat.append(published - src)
        if kind == "query":
            for it in p.get("items", []):
                iid = it.get("id")
                if iid in probe_items and iid not in found:
                    found[iid] = published - probe_items[iid]

    try:
        await asyncio.to_thread(worker.wait_ready, 600)
        watcher = OutputWatcher(settings, on_rec, fetch_max_wait_ms=WATCH_FETCH_WAIT_MS)
        await watcher.start()
        port = int(env["SOCREC_METRICS_PORT"])
        async with EventProducer(settings) as producer:
            boot = await produce(producer, head, 0.0)
            await wait_drained(port, boot.sent, idle_timeout=60)
            before = await asyncio.to_thread(scrape, port)
            measuring["on"] = True
            rng = random.Random(0)

            async def probes() -> None:
                k = 0
                while True:
                    await asyncio.sleep(PROBE_EVERY_S)
                    k += 1
                    words = " ".join(rng.sample(_PROBE_WORDS, 6))
                    item = ItemPublished(f"probe-item-{k}", f"probe-{k}", time.time(), f"{words} {k}")
                    probe_items[item.item_id] = item.ts
                    await producer.send(item)
                    t_end = time.monotonic() + PROBE_TIMEOUT_S
                    q = 0
                    while item.item_id not in found and time.monotonic() < t_end:
                        q += 1
                        query = Query(f"probe-q-{k}-{q}", "bench-prober", time.time(), item.text)
                        sent_ts[query.event_id] = query.ts
                        await producer.send(query)
                        await asyncio.sleep(PROBE_POLL_S)

            prober = asyncio.create_task(probes())

            def on_sent(ev: Event) -> None:
                sent_ts[ev.event_id] = ev.ts

            sampler = asyncio.create_task(_sample_cpu(worker.pid, broker.pid, cpu_samples))
            pollers = [
                asyncio.create_task(_poll_api(int(env["SOCREC_WEB_PORT"]), users, i, api_s, api_codes))
                for i in range(API_CLIENTS if api and users else 0)
            ]
            t0 = time.monotonic()
            stats = await produce(producer, live, rate, on_sent=on_sent)
            produce_s = time.monotonic() - t0
            sampler.cancel()
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            cpu_samples.append(_cpu_sample(worker.pid, broker.pid))
            prober.cancel()
            try:
                await prober
            except asyncio.CancelledError:
                pass
        await wait_drained(port, boot.sent + stats.sent, idle_timeout=30)
        await asyncio.sleep(1.0)
        await watcher.stop()
        final = await asyncio.to_thread(scrape, port)
    finally:
        await asyncio.to_thread(worker.stop)
    fresh = list(found.values())
    batches = final.get("socrec_batch_events_count", 0.0) - before.get("socrec_batch_events_count", 0.0)
    batch_events = final.get("socrec_batch_events_sum", 0.0) - before.get("socrec_batch_events_sum", 0.0)
    return {
        "events": stats.sent,
        "offered_rate": rate,
        "achieved_rate": stats.sent / produce_s if produce_s > 0 else 0.0,
        "latency_s": latencies,
        "query_latency_s": query_lat,
        "api_get_s": api_s,
        "api_codes": {str(k): v for k, v in sorted(api_codes.items())},
        "served_models": served,
        "freshness_s": fresh,
        "probes": len(probe_items),
        "probes_missed": len(probe_items) - len(found),
        "worker_e2e_count": final.get("socrec_end_to_end_latency_seconds_count", 0.0),
        # engine batches of the live part: far above rate x batch window means catch-up merged them
        "batches": int(batches),
        "mean_batch_events": round(batch_events / batches, 1) if batches else None,
        "by_second": _by_second(sent_at, latencies),
        # cores per process over the live part, every CPU_SAMPLE_S: the broker's share climbs
        "cores": cores_series(cpu_samples),
    }


def _by_second(sent_at: list[float], latencies: list[float]) -> list[list[float]]:
    """[second since the first send, recommendations, p50 ms, max ms]: shows whether a slow tail is a
    start-up transient or a steady state."""
    if not sent_at:
        return []
    t0 = min(sent_at)
    bins: dict[int, list[float]] = {}
    for ts, lat in zip(sent_at, latencies, strict=True):
        bins.setdefault(int(ts - t0), []).append(lat)
    out = []
    for sec in sorted(bins):
        xs = sorted(bins[sec])
        out.append([sec, len(xs), round(xs[len(xs) // 2] * 1000.0, 1), round(xs[-1] * 1000.0, 1)])
    return out


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
            pt = await _backlog_phase(broker, workdir, "pt.", device, backlog, passthrough=True)
            result["passthrough_events_per_s"] = round(pt["events_per_s"], 1)
            result["passthrough"] = pt
        if "throughput" in phases:
            tp = await _backlog_phase(broker, workdir, "tp.", device, backlog, passthrough=False)
            result["events_per_s"] = round(tp["events_per_s"], 1)
            result["throughput"] = tp
        if "two-workers" in phases:
            # same backlog, two worker processes of one app: the scale-out path (docs/architecture.md, 'Scale-out')
            two = await _backlog_phase(broker, workdir, "tw.", device, backlog, passthrough=False, workers=2)
            result["two_workers"] = two
            result["two_workers_events_per_s"] = round(two["events_per_s"], 1)
            if result.get("events_per_s"):
                result["two_workers_ratio"] = round(two["events_per_s"] / result["events_per_s"], 3)
        if "latency" in phases:
            lat = await _latency_phase(broker, workdir, device, head, interactions[:latency_events], rate, api)
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

"""The latency phase of ``socrec bench throughput``: a caught-up worker, interactions at a fixed rate,
latency from each recommendation's Kafka timestamp, item freshness probes and read-API clients meanwhile."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.backlog import phase_settings, worker_env
from benchmarks.cores import cores_series, cpu_sample, sample_cpu
from benchmarks.swaps import Swaps
from socrec_online.brokers import ManagedBroker
from socrec_online.events import Event, ItemPublished, Query
from streams.admin import ensure_topics
from streams.observe import OutputWatcher, scrape, wait_drained
from streams.procs import WorkerProcess
from streams.replay import EventProducer, produce
from streams.topics import required_topics

API_CLIENTS = 4
API_PAUSE_S = 0.05
"""Each API client waits this long between answers: ~4 x 20 GETs/s at most, a read load beside the events."""
API_TOKEN = "bench-read-api"
PROBE_EVERY_S = 2.0
PROBE_POLL_S = 0.1
PROBE_TIMEOUT_S = 5.0
# The latency phase's consumer of recommendations: latency is read from each record's Kafka timestamp
# (when the worker published it), so how soon this consumer sees it is not part of the figure, and
# every fetch of a partition that returns data costs the broker (Tansu more the more record batches
# it holds): a fetch that waits longer and gathers more costs the broker less CPU and the figure nothing.
WATCH_FETCH_WAIT_MS = 250
WATCH_FETCH_MIN_BYTES = 16384
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


async def latency_phase(
    broker: ManagedBroker,
    workdir: Path,
    device: str,
    head: list[Event],
    live: list[Event],
    rate: float,
    api: bool = True,
    swap_every_s: float | None = None,
) -> dict[str, Any]:
    """``swap_every_s``: hot-swap the served snapshot that often during the live part (see
    :mod:`benchmarks.swaps`); None = never."""
    env = worker_env(broker, workdir, "lat.", device)
    if api:
        env["SOCREC_API_TOKEN"] = API_TOKEN
    settings = phase_settings(env)
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
    swaps = Swaps(Path(env["SOCREC_SNAPSHOT_DIR"]))

    def on_rec(p: dict[str, Any], published: float) -> None:
        src = sent_ts.get(p.get("source_event_id") or "")
        kind = p.get("kind")
        version = str(p.get("model_version"))
        served[version] = served.get(version, 0) + 1
        swaps.seen(version, published)
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
        watcher = OutputWatcher(settings, on_rec, fetch_max_wait_ms=WATCH_FETCH_WAIT_MS, fetch_min_bytes=WATCH_FETCH_MIN_BYTES)
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

            sampler = asyncio.create_task(sample_cpu(worker.pid, broker.pid, cpu_samples))
            pollers = [
                asyncio.create_task(_poll_api(int(env["SOCREC_WEB_PORT"]), users, i, api_s, api_codes))
                for i in range(API_CLIENTS if api and users else 0)
            ]
            swapper = asyncio.create_task(swaps.run(settings, swap_every_s)) if swap_every_s else None
            t0 = time.monotonic()
            stats = await produce(producer, live, rate, on_sent=on_sent)
            produce_s = time.monotonic() - t0
            sampler.cancel()
            if swapper is not None:
                swapper.cancel()
                await asyncio.gather(swapper, return_exceptions=True)
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            cpu_samples.append(cpu_sample(worker.pid, broker.pid))
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
    across, outside = swaps.split(sent_at, latencies)
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
        "swaps": swaps.report(),
        "latency_across_swaps_s": across,
        "latency_outside_swaps_s": outside,
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


__all__ = [
    "API_CLIENTS",
    "API_PAUSE_S",
    "API_TOKEN",
    "PROBE_EVERY_S",
    "PROBE_POLL_S",
    "PROBE_TIMEOUT_S",
    "WATCH_FETCH_WAIT_MS",
    "latency_phase",
]

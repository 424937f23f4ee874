"""Sustained load: a fixed rate for a bounded duration over a bounded key space: lag, drain time,
resident memory growth after warm-up, end-to-end latency percentiles, by period."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness.rig import Rig
from benchmarks.harness.streams import load_stream
from socrec_online.events import Event
from streams.observe import OutputWatcher, events_done, percentiles_ms


def _rss_bytes(pid: int) -> int:
    """Resident memory of the worker and its children (an engine process counts too)."""
    import psutil

    try:
        p = psutil.Process(pid)
        total = int(p.memory_info().rss)
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += int(c.memory_info().rss)
        return total
    except psutil.Error:
        return 0



async def load_scenario(
    rig: Rig,
    *,
    rate: float,
    duration_s: float,
    users: int = 300,
    items: int = 500,
    seed: int = 0,
    warmup_frac: float = 0.25,
    drain_timeout: float = 120.0,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """``rate`` events/s for ``duration_s`` over bounded keys: lag, drain, RSS growth, latency."""
    from itertools import islice

    await rig.ensure_topics()
    await asyncio.to_thread(rig.start)
    pid = rig.pid or 0
    head, live = load_stream(users, items, seed=seed)
    boot = await rig.produce(head)
    deadline = time.monotonic() + drain_timeout
    while events_done(await asyncio.to_thread(rig.metrics)) < boot.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    sent_ts: dict[str, float] = {}
    latencies: list[float] = []
    sent_at: list[float] = []  # the event's ts of each latency, to split them into periods

    def on_rec(p: dict[str, Any], published: float) -> None:
        src = sent_ts.get(p.get("source_event_id") or "")
        if src is not None and p.get("kind") == "items":
            latencies.append(published - src)
            sent_at.append(src)

    watcher = OutputWatcher(rig.settings, on_rec)
    await watcher.start()
    n = int(rate * duration_s)
    samples: list[dict[str, float]] = []

    def on_sent(ev: Event) -> None:
        sent_ts[ev.event_id] = ev.ts

    producer = asyncio.create_task(rig.produce(islice(live, n), rate, on_sent=on_sent))
    t0 = time.monotonic()
    t0_wall = time.time()
    try:
        while not producer.done():
            m = await asyncio.to_thread(rig.metrics)
            samples.append({
                "t": time.monotonic() - t0,
                "lag": sum(v for k, v in m.items() if k.startswith("socrec_consumer_lag{")),
                "rss": float(_rss_bytes(pid)),
                "done": events_done(m),
            })  # fmt: skip
            if len(samples) % 15 == 0:
                s = samples[-1]
                log(f"load t={s['t']:.0f}s lag={s['lag']:.0f} rss={s['rss'] / 2**20:.0f}MiB done={s['done']:.0f}")
            await asyncio.sleep(1.0)
        stats = await producer
        produce_s = time.monotonic() - t0
        target = boot.sent + stats.sent
        t_stop = time.monotonic()
        drained_s: float | None = None
        while time.monotonic() - t_stop < drain_timeout:
            m = await asyncio.to_thread(rig.metrics)
            if events_done(m) >= target:
                drained_s = time.monotonic() - t_stop
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)
    finally:
        await watcher.stop()
        if not producer.done():
            producer.cancel()
    rss_end = float(_rss_bytes(pid))
    warm = [s for s in samples if s["t"] >= warmup_frac * duration_s]
    rss_warm = warm[0]["rss"] if warm else (samples[0]["rss"] if samples else rss_end)
    half = [s for s in samples if s["t"] >= duration_s / 2]
    return {
        "rate": rate,
        "duration_s": duration_s,
        "events": stats.sent,
        "achieved_rate": stats.sent / produce_s if produce_s > 0 else 0.0,
        "max_lag": max((s["lag"] for s in samples), default=0.0),
        "drained_seconds": drained_s,
        "rss_mib_after_warmup": rss_warm / 2**20,
        "rss_mib_end": rss_end / 2**20,
        "rss_growth_ratio": rss_end / rss_warm if rss_warm else None,
        # the second half alone: a leak keeps growing, a warm-up levels off
        "rss_growth_second_half": rss_end / half[0]["rss"] if half else None,
        "latency_ms": percentiles_ms(latencies),
        "latency_samples": len(latencies),
        "same_process": rig.worker is not None and rig.worker.alive() and rig.pid == pid,
        "by_period": _periods(samples, latencies, [t - t0_wall for t in sent_at], duration_s),
        "series": samples,
    }


def _periods(
    samples: list[dict[str, float]], latencies: list[float], sent_t: list[float], duration_s: float
) -> list[dict[str, Any]]:
    """The load split into up to 12 periods (>= 60 s): RSS at the end of each, its highest lag and its
    latency percentiles, so a long run shows whether memory levels off and latency drifts."""
    step = max(60.0, duration_s / 12)
    lat = np.asarray(latencies, dtype=np.float64)
    at = np.asarray(sent_t, dtype=np.float64)
    out = []
    start = 0.0
    while start < duration_s:
        end = min(start + step, duration_s)
        inside = [s for s in samples if start <= s["t"] < end]
        sel = lat[(at >= start) & (at < end)] if lat.size else lat
        out.append({
            "t_end_s": round(end, 1),
            "rss_mib": round(inside[-1]["rss"] / 2**20, 1) if inside else None,
            "max_lag": max((s["lag"] for s in inside), default=None),
            "latency_ms": percentiles_ms(sel),
            "latency_samples": int(sel.size),
        })  # fmt: skip
        start = end
    return out


__all__ = [
    "load_scenario",
]

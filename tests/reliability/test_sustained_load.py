"""Must 5 (short variant): a fixed rate for ~60 s over a bounded key space.

Lag must stay bounded and drain after the load stops, the same process must serve throughout;
resident memory growth after warm-up and latency p99 are reported (the long variant, minutes,
is `socrec bench reliability --duration-s`). Speed is never asserted here: the bench measures it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from benchmarks.harness.rig import Rig
from benchmarks.load import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 100.0
DURATION_S = 60.0


def test_sustained_rate_lag_bounded_and_drains(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("load.")
    r = asyncio.run(load_scenario(rig, rate=RATE, duration_s=DURATION_S, users=200, items=300, log=print))
    series = r.pop("series")
    print({k: v for k, v in r.items()})
    assert r["events"] == int(RATE * DURATION_S)
    assert r["same_process"]
    assert r["drained_seconds"] is not None, "the backlog never drained after the load stopped"
    assert r["max_lag"] < RATE * DURATION_S / 2, [s["lag"] for s in series]  # bounded, not the whole run
    assert r["rss_growth_ratio"] is not None and r["rss_growth_ratio"] < 1.5  # a leak, not noise
    assert r["latency_samples"] > 0 and r["latency_ms"]["p99"] is not None
    # the long bench's per-period view (memory levelling off, latency drift) spans the whole run
    assert r["by_period"][-1]["t_end_s"] == DURATION_S and all(p["rss_mib"] for p in r["by_period"])

"""Helpers for tests that drive worker processes through ``benchmarks.harness.rig.Rig``."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from benchmarks.harness.rig import Rig
from socrec_online.events import Event
from streams.observe import events_done


def timed(events: list[Event], t0: float) -> list[Event]:
    """The same timestamps for every run (the engine's clock, decay and freshness follow them)."""
    return [dataclasses.replace(ev, ts=t0 + i * 0.01) for i, ev in enumerate(events)]  # type: ignore[type-var]


def wait_until(what: str, cond: Any, rigs: list[Rig], timeout: float = 120.0) -> None:
    """Poll ``cond`` until true; fails with the workers' log tails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    logs = "\n\n".join(r.log_tail(3000) for r in rigs)
    pytest.fail(f"timed out waiting for {what}; worker logs:\n{logs}")


def send(rig: Rig, events: list[Event], rate: float = 0.0) -> None:
    """Produce with aiokafka and the events' own timestamps (not re-stamped to the wall clock)."""
    from streams.replay import EventProducer, produce

    async def go() -> None:
        async with EventProducer(rig.settings) as p:
            await produce(p, events, rate, live_ts=False)

    asyncio.run(go())


def done(rigs: list[Rig]) -> float:
    """Input events the workers have finished with, together."""
    return sum(events_done(r.metrics()) for r in rigs)

"""Watching a running worker from outside: its Prometheus endpoint and its output topics.

Shared by the demo's live view and the throughput bench, so both report the same figures
the operator's Prometheus would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs
from streams.topics import topic_name


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, float]:
    """Flat ``{'name{a="b"}': value}`` of one scrape (empty dict when the endpoint is down)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
            text = resp.read().decode("utf-8")
    except OSError:
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


def events_done(sample: dict[str, float]) -> float:
    """Input events the worker has finished with (every outcome)."""
    return sum(v for k, v in sample.items() if k.startswith("socrec_events_total{"))


def percentiles(values: Any, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {f"p{int(q)}": float("nan") for q in qs}
    return {f"p{int(q)}": float(np.percentile(arr, q)) for q in qs}


def percentiles_ms(values: Any, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """:func:`percentiles` of seconds, in ms rounded to 0.1; None where there were no samples (the
    bench JSON stays strict)."""
    return {k: (None if math.isnan(v) else round(v * 1000.0, 1)) for k, v in percentiles(values, qs).items()}


class OutputWatcher:
    """Consumes ``recommendations`` and ``dead-letters`` from the end, calling ``on_rec`` / ``on_dead``.

    ``on_rec(payload, published_ts)``: published_ts is the record's Kafka timestamp (when the
    worker produced it), in seconds. ``fetch_max_wait_ms``: Tansu holds every fetch this long, so
    short for a live view; longer where only the timestamps matter (each fetch costs the broker),
    with ``fetch_min_bytes`` above 1 so that a fetch gathers records instead of returning with
    the first one.
    """

    def __init__(
        self,
        settings: Settings,
        on_rec: Callable[[dict[str, Any], float], None],
        on_dead: Callable[[dict[str, Any]], None] | None = None,
        from_beginning: bool = False,
        fetch_max_wait_ms: int = 50,
        fetch_min_bytes: int = 1,
    ) -> None:
        self.settings = settings
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        self.on_rec = on_rec
        self.on_dead = on_dead
        self.from_beginning = from_beginning
        self.recs = 0
        self.dead = 0
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            topic_name(self.settings, "recommendations"),
            topic_name(self.settings, "dead-letters"),
            **kafka_client_kwargs(self.settings),
            group_id=None,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
            client_id="socrec-observer",
            fetch_min_bytes=self.fetch_min_bytes,
            fetch_max_wait_ms=self.fetch_max_wait_ms,  # Tansu holds a fetch for its whole max wait
        )
        await self._consumer.start()
        # Resolve positions now, so nothing published after start() is missed.
        deadline = time.monotonic() + 15.0
        while len(self._consumer.assignment()) < 2 * self.settings.partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for tp in self._consumer.assignment():
            await self._consumer.position(tp)
        self.ready.set()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        rec_topic = topic_name(self.settings, "recommendations")
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, msgs in batch.items():
                for m in msgs:
                    try:
                        payload = orjson.loads(m.value)
                    except orjson.JSONDecodeError:
                        continue
                    if tp.topic == rec_topic:
                        self.recs += 1
                        self.on_rec(payload, m.timestamp / 1000.0)
                    else:
                        self.dead += 1
                        if self.on_dead is not None:
                            self.on_dead(payload)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


async def wait_assigned(
    metrics_ports: Sequence[int], partitions: int, *, timeout: float = 120.0, poll: float = 0.5
) -> float:
    """Wait until the workers' group is stable: every worker consumes at least one input partition and
    each input partition is consumed by exactly one (``socrec_assigned_partitions``). Returns the seconds
    waited; TimeoutError past ``timeout``.

    Why: workers started together join the group one after the other, so the first takes every
    partition and the next join is a rebalance in the middle of the work (measured: 2 of 3 two-worker
    bench runs re-read 176 and 572 events; their ratios to one worker, 0.76 and 0.89, were the lowest)."""
    t0 = time.monotonic()
    while True:
        per_topic: dict[str, float] = {}
        each_has_some = True
        for port in metrics_ports:
            mine = {k: v for k, v in (await asyncio.to_thread(scrape, port)).items() if k.startswith("socrec_assigned_partitions{")}
            each_has_some = each_has_some and sum(mine.values()) > 0
            for k, v in mine.items():
                per_topic[k] = per_topic.get(k, 0.0) + v
        if each_has_some and per_topic and all(v == partitions for v in per_topic.values()):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"the workers' group did not settle in {timeout:.0f} s: {per_topic}")
        await asyncio.sleep(poll)


async def wait_drained(
    metrics_port: int | Sequence[int], target: int, *, idle_timeout: float = 30.0, poll: float = 0.25
) -> tuple[float, list[tuple[float, float]]]:
    """Wait until the worker (or the workers, summed) handled ``target`` events (or made no progress
    for ``idle_timeout``).

    Returns (events done, [(monotonic time, events done)] samples).
    """
    ports = [metrics_port] if isinstance(metrics_port, int) else list(metrics_port)
    samples: list[tuple[float, float]] = []
    last_progress = time.monotonic()
    last = -1.0
    while True:
        done = 0.0
        for port in ports:
            done += events_done(await asyncio.to_thread(scrape, port))
        now = time.monotonic()
        samples.append((now, done))
        if done > last:
            last, last_progress = done, now
        if done >= target or now - last_progress > idle_timeout:
            return done, samples
        await asyncio.sleep(poll)

"""``socrec replay DATASET``: a dataset's events produced to Kafka as a live stream.

The dataset's own order is causal (items, then the social graph and profiles, then the
interactions by time). The catalogue, graph and profiles go first as a bootstrap burst;
then ``events`` interactions follow at ``rate`` events/s. By default every event is stamped
with the wall clock when it is sent (``live_ts``), so latency and freshness are measured
against real time, as a production producer would stamp them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Self

import orjson
from aiokafka import AIOKafkaProducer

from socrec_online.data import Dataset, load_dataset
from socrec_online.events import Click, Comment, Event, Like, key_of, to_dict, topic_of
from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs
from streams.topics import topic_name

BOOTSTRAP_RATE = 0.0  # as fast as the broker takes it


def split_stream(dataset: Dataset) -> tuple[list[Event], Iterator[Event]]:
    """(catalogue + graph + profiles, the interactions that follow, lazily)."""
    it = dataset.events()
    head: list[Event] = []
    for ev in it:
        if isinstance(ev, Click | Like | Comment):
            return head, _chain_one(ev, it)
        head.append(ev)
    return head, iter(())


def _chain_one(first: Event, rest: Iterator[Event]) -> Iterator[Event]:
    yield first
    yield from rest


@dataclass
class ProduceStats:
    sent: int = 0
    seconds: float = 0.0
    by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class EventProducer:
    """An aiokafka producer of typed events (JSON, key per DESIGN.md, topic prefix applied)."""

    def __init__(self, settings: Settings, linger_ms: int = 5) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            **kafka_client_kwargs(settings), linger_ms=linger_ms, acks=1, client_id="socrec-replay"
        )

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send_raw(self, topic: str, key: str | bytes | None, value: bytes) -> Any:
        k = key.encode() if isinstance(key, str) else key
        return await self._producer.send(topic_name(self.settings, topic), value=value, key=k)

    async def send(self, event: Event) -> Any:
        return await self.send_raw(topic_of(event), key_of(event), orjson.dumps(to_dict(event)))

    async def flush(self) -> None:
        await self._producer.flush()


async def paced(events: Iterable[Event], rate: float, live_ts: bool = True) -> AsyncIterator[Event]:
    """Yield events at ``rate``/s (0 = unpaced), re-stamped with the wall clock when ``live_ts``."""
    start = time.perf_counter()
    for i, ev in enumerate(events):
        if rate > 0:
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0.002:
                await asyncio.sleep(delay)
        elif i % 512 == 0:
            await asyncio.sleep(0)  # let the producer's sender run
        yield dataclasses.replace(ev, ts=time.time()) if live_ts else ev


async def produce(
    producer: EventProducer,
    events: Iterable[Event],
    rate: float,
    *,
    live_ts: bool = True,
    on_sent: Callable[[Event], None] | None = None,
    stats: ProduceStats | None = None,
) -> ProduceStats:
    stats = stats or ProduceStats()
    t0 = time.perf_counter()
    pending: list[Any] = []
    async for ev in paced(events, rate, live_ts):
        pending.append(await producer.send(ev))
        topic = topic_of(ev)
        stats.by_topic[topic] = stats.by_topic.get(topic, 0) + 1
        stats.sent += 1
        if on_sent is not None:
            on_sent(ev)
        if len(pending) >= 1024:
            await asyncio.gather(*pending)
            pending.clear()
    if pending:
        await asyncio.gather(*pending)
    stats.seconds += time.perf_counter() - t0
    return stats


async def replay(
    settings: Settings,
    dataset: str,
    *,
    data_dir: str | None = None,
    events: int | None = None,
    rate: float = 500.0,
    bootstrap: bool = True,
    live_ts: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> ProduceStats:
    from streams.admin import ensure_topics
    from streams.topics import required_topics

    await ensure_topics(settings, required_topics(settings))
    ds = load_dataset(dataset, data_dir, seed=seed)
    head, live = split_stream(ds)
    live_part: Iterable[Event] = islice(live, events) if events is not None else live
    stats = ProduceStats()
    async with EventProducer(settings) as producer:
        if bootstrap:
            await produce(producer, head, BOOTSTRAP_RATE, live_ts=live_ts, stats=stats)
            if progress:
                print(f"bootstrap: {stats.sent} catalogue/graph/profile events sent", flush=True)
        total = events if events is not None else None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="ev", desc="replay", smoothing=0.1)
            await produce(
                producer, live_part, rate, live_ts=live_ts, stats=stats, on_sent=lambda _e: bar.update()
            )
            bar.close()
        else:
            await produce(producer, live_part, rate, live_ts=live_ts, stats=stats)
    return stats

"""The worker tells the engine where each event was read (issue #19, finding 3), so a replay is exact
on offsets: its input partition, its offset, and the offsets of its key's events held below it on
that partition (waiting for their item). On the embedded broker, whose logs restart at offset 0 after
a broker restart, it passes none: event ids decide there."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from socrec_online.events import Click, Event, to_dict
from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.pipeline import Pipeline

PARTS = 4
TS = 1_700_000_000.25


class Engine:
    """Records the positions it is given; item ``late`` is not known yet."""

    def __init__(self) -> None:
        self.positions: list[Any] = []

    def restore(self, state: Any) -> None:
        pass

    def knows_item(self, item: str) -> bool:
        return item != "late"

    def step(self, events: list[Event], positions: Any = None) -> dict[str, Any]:
        self.positions += positions or [None] * len(events)
        return {"payloads": [], "rejected": [], "table_updates": {}}


class Out:
    async def send(self, topic: str, key: Any, value: bytes) -> None:
        pass

    async def flush(self) -> None:
        pass


def record(offset: int, ev: Click) -> Any:
    p = owner_partition(ev.user_id, PARTS)
    message = SimpleNamespace(
        topic="t.clicks", partition=p, offset=offset, timestamp=TS, headers=[], incref=lambda: None
    )  # fmt: skip
    return SimpleNamespace(message=message, key=ev.user_id.encode(), value=orjson.dumps(to_dict(ev)))


def positions_given(broker: str) -> list[Any]:
    s = Settings(device="cpu", partitions=PARTS, topic_prefix="t.", broker=broker, unknown_item_grace_s=60.0)
    engine = Engine()
    p = Pipeline(s, None, {}, engine, Out())  # type: ignore[arg-type]
    batch = [
        record(7, Click("c7", "ann", "late", TS)),  # held: its item is not published yet
        record(8, Click("c8", "ann", "i1", TS)),
        record(9, Click("c9", "ann", "i2", TS)),
    ]

    async def go() -> None:
        await p.handle(batch)
        await p.quiesce()

    asyncio.run(go())
    p.close()
    return engine.positions


def test_on_apache_kafka_each_event_comes_with_its_position_and_the_held_offsets_below_it() -> None:
    tp = f"clicks/{owner_partition('ann', PARTS)}"
    assert positions_given("kafka") == [(tp, 8, (7,)), (tp, 9, (7,))]


def test_on_a_broker_that_loses_its_logs_no_positions_are_given() -> None:
    assert positions_given("embedded") == [None, None]

"""streams.routing in the Pipeline: a record on a partition other than its owner id's is produced
again to the owner partition, unchanged, and never applied here; the batch is acked only after
that copy is flushed. Well-routed records, with or without a key, are applied."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from socrec_online import metrics
from socrec_online.events import Click, Event, to_dict
from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.pipeline import Pipeline
from streams.routing import REROUTED_FROM

PARTS = 4
TS = 1_700_000_000.25


class Engine:
    """Records what it is asked to apply."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    def restore(self, state: Any) -> None:
        pass

    def knows_item(self, item: str) -> bool:
        return True

    def step(self, events: list[Event], positions: Any = None) -> dict[str, Any]:
        self.applied += [e.event_id for e in events]
        return {"payloads": [], "rejected": [], "table_updates": {}}


class Out:
    """The output producer: what was sent where, and when it was flushed."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.copies: list[tuple[str, int, bytes | None, bytes | None, int | None, list[Any]]] = []

    async def send(self, topic: str, key: Any, value: bytes) -> None:
        self.log.append(f"send {topic}")

    async def send_to(self, topic: str, partition: int, key: Any, value: Any, ts: Any, headers: Any) -> None:
        self.copies.append((topic, partition, key, value, ts, headers))
        self.log.append(f"reroute {orjson.loads(value)['event_id']}")

    async def flush(self) -> None:
        self.log.append("flush")


def record(partition: int, offset: int, key: bytes | None, ev: Event, headers: Any = ()) -> Any:
    message = SimpleNamespace(
        topic="t.clicks", partition=partition, offset=offset, timestamp=TS, headers=list(headers),
        incref=lambda: None,
    )  # fmt: skip
    return SimpleNamespace(message=message, key=key, value=orjson.dumps(to_dict(ev)))


def elsewhere(user: str) -> int:
    return (owner_partition(user, PARTS) + 1) % PARTS


def test_a_misrouted_record_is_rerouted_unchanged_and_not_applied_the_rest_is_applied() -> None:
    s = Settings(device="cpu", partitions=PARTS, topic_prefix="t.")
    log: list[str] = []
    engine, out = Engine(), Out(log)
    p = Pipeline(s, None, {}, engine, out)  # type: ignore[arg-type]

    async def ack(fe: Any) -> None:
        log.append(f"ack {fe.message.offset}")

    p.bind_acks(ack)
    c = [Click(f"c{i}", u, "i1", TS) for i, u in enumerate(["ann", "bob", "cy", "dee", "eve"])]
    batch = [
        record(owner_partition("ann", PARTS), 10, b"ann", c[0]),  # well routed
        record(elsewhere("bob"), 11, b"bob", c[1], [("trace", b"x")]),  # misrouted (another partitioner)
        record(owner_partition("cy", PARTS), 12, None, c[2]),  # no key, on its owner's partition
        record(elsewhere("dee"), 13, None, c[3]),  # no key, elsewhere: routed by the id in the value
        record(elsewhere("eve"), 14, b"eve", c[4], [(REROUTED_FROM, b"clicks/0/1")]),  # routed once already
    ]
    before = metrics.MISROUTED.labels(topic="clicks")._value.get()

    async def go() -> None:
        await p.handle(batch)
        await p.quiesce()

    asyncio.run(go())
    p.close()
    assert engine.applied == ["c0", "c2", "c4"]
    assert [(t, part, k, v, ts) for t, part, k, v, ts, _ in out.copies] == [
        ("t.clicks", owner_partition("bob", PARTS), b"bob", batch[1].value, int(TS * 1000)),
        ("t.clicks", owner_partition("dee", PARTS), None, batch[3].value, int(TS * 1000)),
    ]
    assert out.copies[0][5] == [("trace", b"x"), (REROUTED_FROM, f"clicks/{elsewhere('bob')}/11".encode())]
    assert metrics.MISROUTED.labels(topic="clicks")._value.get() - before == 2
    # the copies are flushed before any record of the batch is acknowledged (committed)
    assert log[:2] == ["reroute c1", "reroute c3"] and log[2] == "flush"
    assert sorted(log[3:]) == [f"ack {o}" for o in range(10, 15)]

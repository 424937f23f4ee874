"""streams.breaker through streams.pipeline.Pipeline, without Kafka: an event the engine keeps failing
on is dead-lettered as processing_failed and the batch's other events are applied; an engine that
fails on everything still crashes the worker (issue #19, finding 7)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from _engine_texts import T0, TEXTS

from socrec_online import metrics
from socrec_online.events import Click, Comment, Event, ItemPublished, key_of, to_dict, topic_of
from socrec_online.partitioning import owner_partition
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings
from streams.pipeline import Pipeline


class Out:
    """The OutputProducer calls the pipeline makes, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, key: bytes | str | None, value: bytes) -> None:
        self.sent.append((topic, key.encode() if isinstance(key, str) else key, value))

    async def flush(self) -> None:
        return None

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v in self.sent if t == "dead-letters"]


def records(events: list[Event], start: int = 0) -> list[Any]:
    """The parts of Faust events the pipeline reads (each on its key's partition, consecutive offsets)."""
    out = []
    partitions = Settings().partitions
    for offset, ev in enumerate(events, start):
        partition = owner_partition(key_of(ev), partitions)  # well routed: streams.routing applies it here
        message = SimpleNamespace(topic=topic_of(ev), partition=partition, offset=offset)
        out.append(SimpleNamespace(message=message, key=key_of(ev).encode(), value=orjson.dumps(to_dict(ev))))
    return out


def pipeline(encoder: Any, engine: Engine) -> tuple[Pipeline, Out, dict[str, dict[str, Any]]]:
    tables: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}
    out = Out()
    p = Pipeline(engine.settings, None, tables, engine, out)  # type: ignore[arg-type]
    return p, out, tables


def handle(p: Pipeline, batch: list[Any]) -> None:
    async def go() -> None:
        await p.handle(batch)
        await p.quiesce()

    asyncio.run(go())


ITEMS = [ItemPublished(f"p{i}", f"i{i}", T0, TEXTS[i]) for i in range(4)]


def test_an_event_the_engine_fails_on_is_dead_lettered_and_the_others_are_applied(encoder: Any) -> None:
    s = Settings(device="cpu", unknown_item_grace_s=0, breaker_failures=3)

    def poisoned(text: str) -> float:  # the engine raises on this one comment, mid-batch
        if text == "poison":
            raise RuntimeError("boom on this event")
        return 0.5

    engine = Engine(s, encoder, sentiment=poisoned)
    p, out, tables = pipeline(encoder, engine)
    handle(p, records(ITEMS))
    trips = metrics.BREAKER_TRIPS._value.get()
    batch = [
        Click("c1", "ann", "i0", T0 + 1),
        Comment("m1", "bob", "i1", T0 + 2, "lovely"),
        Comment("bad", "bob", "i2", T0 + 3, "poison"),  # after good events of the same batch
        Click("c2", "cy", "i3", T0 + 4),
        Comment("m2", "bob", "i3", T0 + 5, "great stuff"),
    ]
    handle(p, records(batch, start=10))  # nothing raises out

    dead = out.dead_letters()
    assert [(d["topic"], d["offset"], d["reason"]) for d in dead] == [("comments", 12, "processing_failed")]
    assert "boom on this event" in dead[0]["error"]
    assert metrics.BREAKER_TRIPS._value.get() == trips + 1
    # the good events are applied, in the engine and in the tables, and the poison left nothing behind
    assert set(tables["activity"]) == {"ann", "bob", "cy"}
    bob = tables["activity"]["bob"]
    assert list(bob["recent"]) == ["i1", "i3"] and "bad" not in bob["ids"]
    assert {"m1", "m2"} <= set(bob["ids"])
    assert set(engine.activity["bob"].recent) == {"i1", "i3"}
    users = {orjson.loads(v)["user_id"] for t, _, v in out.sent if t == "recommendations"}
    assert users >= {"ann", "bob", "cy"}

    # the next batch goes through as usual
    handle(p, records([Click("c3", "ann", "i1", T0 + 6)], start=20))
    assert list(tables["activity"]["ann"]["recent"]) == ["i0", "i1"]
    assert len(out.dead_letters()) == 1


def test_an_engine_that_fails_on_everything_still_crashes_the_worker(encoder: Any) -> None:
    s = Settings(device="cpu", unknown_item_grace_s=0, breaker_failures=2)
    engine = Engine(s, encoder)
    p, out, tables = pipeline(encoder, engine)
    handle(p, records(ITEMS))
    calls = []

    def broken(events: Any, now: float | None = None, positions: Any = None) -> dict[str, Any]:  # e.g. the engine process died
        calls.append(len(events))
        raise RuntimeError("engine process died")

    engine.step = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="engine process died"):
        handle(p, records([Click("c1", "ann", "i0", T0 + 1), Click("c2", "bob", "i1", T0 + 2)], start=10))
    assert calls[:2] == [2, 2]  # the batch twice, then one event and the empty probe
    assert calls[-1] == 0
    assert out.dead_letters() == [] and "ann" not in tables["activity"]

"""streams.offsets_guard: the anchor moves forward only past a record the broker still holds, so the
probe reads from near the log end (Tansu returns everything from the probed offset) and a broker
that loses its data after a move is still caught."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, NamedTuple

from socrec_online.settings import Settings
from streams.offsets_guard import OffsetsGuard, Seen
from streams.topics import topic_name


class TP(NamedTuple):
    topic: str
    partition: int


class Msg(NamedTuple):
    timestamp: float
    key: bytes


class Consumer:
    def __init__(self, tps: list[TP]) -> None:
        self.tps = tps
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.tps)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)


class Broker:
    """The records the broker holds now, and the offsets each probe asked for."""

    def __init__(self) -> None:
        self.log: dict[tuple[TP, int], Seen] = {}
        self.probed: list[dict[TP, int]] = []
        self.during_fetch: list[tuple[TP, int, Msg]] = []  # consumed while the probe is in flight

    def write(self, tp: TP, offset: int, msg: Msg) -> None:
        self.log[(tp, offset)] = Seen(offset, round(msg.timestamp * 1000), msg.key)


def rig(tmp_path: Any) -> tuple[OffsetsGuard, Consumer, Broker, TP]:
    settings = Settings(data_dir=tmp_path)
    tp = TP(topic_name(settings, "clicks"), 0)
    consumer = Consumer([tp])
    guard = OffsetsGuard(SimpleNamespace(rebalancing=False, consumer=consumer), settings, [tp.topic])  # type: ignore[arg-type]
    broker = Broker()

    async def fetch(offsets: Mapping[Any, int]) -> dict[Any, Seen]:
        broker.probed.append(dict(offsets))
        for t, off, msg in broker.during_fetch:
            guard.on_message_in(t, off, msg)
        broker.during_fetch.clear()
        return {t: broker.log[(t, off)] for t, off in offsets.items() if (t, off) in broker.log}

    guard._fetch = fetch  # type: ignore[method-assign]
    return guard, consumer, broker, tp


def consume(guard: OffsetsGuard, broker: Broker, tp: TP, offsets: range, ts0: float = 1_700_000_000.0) -> None:
    for off in offsets:
        msg = Msg(ts0 + off, f"u{off}".encode())
        broker.write(tp, off, msg)
        guard.on_message_in(tp, off, msg)


def test_the_anchor_moves_to_the_latest_record_once_the_broker_still_holds_it(tmp_path: Any) -> None:
    guard, consumer, broker, tp = rig(tmp_path)
    consume(guard, broker, tp, range(5))
    assert asyncio.run(guard.check()) == []
    consume(guard, broker, tp, range(5, 10))
    assert asyncio.run(guard.check()) == []
    assert [p[tp] for p in broker.probed] == [0, 4]  # the second probe no longer reads from the log start
    assert guard.anchors[tp].offset == 9 and consumer.seeks == []


def test_a_record_consumed_while_the_probe_runs_does_not_become_the_anchor(tmp_path: Any) -> None:
    """It may come from a log the broker refilled after losing its data: only a record read before
    the probe that found the old anchor is known to come from the same log."""
    guard, _consumer, broker, tp = rig(tmp_path)
    consume(guard, broker, tp, range(5))
    broker.during_fetch.append((tp, 7, Msg(1_800_000_000.0, b"new-log")))
    assert asyncio.run(guard.check()) == []
    assert guard.anchors[tp].offset == 4


def test_a_broker_that_lost_its_data_after_the_anchor_moved_is_still_caught(tmp_path: Any) -> None:
    guard, consumer, broker, tp = rig(tmp_path)
    consume(guard, broker, tp, range(20))
    assert asyncio.run(guard.check()) == []  # anchor: offset 19
    broker.log.clear()  # the broker restarted empty and producers refilled it past the old position
    consume(guard, broker, tp, range(25), ts0=1_800_000_000.0)
    assert asyncio.run(guard.check()) == [(tp, "record_replaced", 0)]
    assert consumer.seeks == [(tp, 0)]
    assert tp not in guard.anchors  # the first record read from the new log is the next anchor

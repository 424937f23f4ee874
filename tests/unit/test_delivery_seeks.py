"""streams.delivery.InOrderInput around seeks: records fetched around a seek never make Faust skip records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from streams.delivery import InOrderInput


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    offset: int


class Fetches:
    """Stands in for Faust's base consumer over the Kafka client: a fetch moves the client's
    position past its records; ``seek`` moves the position and the read mark like Faust's."""

    def __init__(self, fetches: list[list[tuple[TP, int]]]) -> None:
        self.fetches = fetches
        self.fetched: list[tuple[TP, int]] | None = None  # fetched already, not handed out yet
        self._read_offset: dict[TP, int | None] = {}
        self.position: dict[TP, int] = {}
        self.seeks: list[tuple[TP, int]] = []

    def fetch(self) -> list[tuple[TP, int]]:
        records = self.fetches.pop(0)
        for tp, offset in records:
            self.position[tp] = max(self.position.get(tp, 0), offset + 1)
        return records

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        records, self.fetched = (self.fetched, None) if self.fetched is not None else (self.fetch(), None)
        for tp, offset in records:
            yield tp, Rec(offset)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.position[tp] = offset
        self._read_offset[tp] = offset

    def resume_flow(self) -> None:
        self.flow_active = True

    def stop_flow(self) -> None:
        self.flow_active = False

    async def perform_seek(self) -> None:
        self.seeks.append((TP("*", -1), -1))  # every partition to its committed offset

    def assignment(self) -> set[TP]:
        return set()


class Consumer(InOrderInput, Fetches):
    input_topics = frozenset({"clicks"})

    def _fetch_position(self, tp: TP) -> int | None:
        return self.position.get(tp)


IN0, IN1, LOG = TP("clicks", 0), TP("clicks", 1), TP("x-changelog", 0)


def drain(c: Consumer) -> list[tuple[TP, int]]:
    """One fetch through the mixin, moving the read marks like Faust's ``_drain_messages``."""

    async def go() -> list[tuple[TP, int]]:
        out = []
        async for tp, m in c.getmany(timeout=1.0):
            if c._read_offset.get(tp) is None or m.offset >= c._read_offset[tp]:  # type: ignore[operator]
                out.append((tp, m.offset))
                c._read_offset[tp] = m.offset
        return out

    return asyncio.run(go())


def test_records_fetched_before_a_seek_back_are_dropped_and_read_again() -> None:
    c = Consumer([[(IN0, 25), (IN0, 26), (IN0, 27), (IN1, 3)], [(IN0, 25), (IN0, 26), (IN0, 27)]])
    c.fetched = c.fetch()  # fetched; then a rebalance seeks back to the committed offset 25
    asyncio.run(c.seek(IN0, 25))
    assert drain(c) == [(IN1, 3)]
    assert drain(c) == [(IN0, 25), (IN0, 26), (IN0, 27)]


def test_a_record_below_a_read_mark_left_by_a_stale_delivery_goes_through() -> None:
    # the client was sought back to 25, then a stale delivery set Faust's mark to 78
    c = Consumer([[(IN0, 25), (IN0, 26)]])
    c.position[IN0] = 25
    c._read_offset = {IN0: 78}
    assert drain(c) == [(IN0, 25), (IN0, 26)]  # Faust alone drops them as already read


def test_a_record_past_the_read_mark_rereads_from_the_mark() -> None:
    c = Consumer([[(IN0, 18), (IN1, 5), (IN0, 19), (LOG, 40)], [(IN0, 9), (IN0, 10)]])
    c._read_offset = {IN0: 9, IN1: 4, LOG: 3}
    assert drain(c) == [(IN1, 5), (LOG, 40)]  # changelogs are not inputs: Faust's rules apply
    assert c.seeks == [(IN0, 9)]
    assert drain(c) == [(IN0, 9), (IN0, 10)]  # read again from the mark: nothing skipped


def test_consecutive_records_and_unread_partitions_pass_untouched() -> None:
    c = Consumer([[(IN0, 10), (IN0, 11), (IN1, 7)]])
    c._read_offset = {IN0: 9}
    assert drain(c) == [(IN0, 10), (IN0, 11), (IN1, 7)]
    assert c.seeks == []


def test_a_jump_seen_again_at_the_same_mark_is_a_real_hole_and_passes() -> None:
    # e.g. a transaction marker at offset 10: the re-read comes back with the same jump
    c = Consumer([[(IN0, 11)], [(IN0, 11), (IN0, 12)]])
    c._read_offset = {IN0: 9}
    assert drain(c) == []
    assert drain(c) == [(IN0, 11), (IN0, 12)]
    assert c.seeks == [(IN0, 9)]


def test_resuming_with_input_partitions_active_seeks_them_to_the_committed_offsets_first() -> None:
    # Faust empties the stream queues just before resuming: records queued since the last seek are gone
    async def go(active: set[TP], stop_meanwhile: bool = False) -> tuple[list[tuple[TP, int]], bool]:
        c = Consumer([])
        c.flow_active = False
        c._active_partitions = active
        c.resume_flow()
        assert c.flow_active == (c._reseek is None)  # no record flows before the seek
        if stop_meanwhile:
            c.stop_flow()  # a next rebalance
        if c._reseek is not None:
            await c._reseek
        return c.seeks, c.flow_active

    assert asyncio.run(go({IN0, LOG})) == ([(TP("*", -1), -1)], True)
    assert asyncio.run(go({LOG})) == ([], True)  # changelog recovery: the inputs are paused, nothing was read
    assert asyncio.run(go({IN0}, stop_meanwhile=True)) == ([(TP("*", -1), -1)], False)


def test_a_seek_runs_on_the_consumer_thread_not_the_callers() -> None:
    """Faust's own ``_seek`` calls the Kafka client from the event loop's thread while the consumer
    thread fetches (aiokafka's fetch buffer is not thread-safe: KeyError from ``fetched_records``)."""
    import threading
    from types import SimpleNamespace

    from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

    class Thread:
        """Stands in for Faust's consumer thread: ``call_thread`` runs a call on another thread."""

        def __init__(self) -> None:
            self.ran_on: list[str] = []

        def seek(self, tp: TP, offset: int) -> None:
            self.ran_on.append(threading.current_thread().name)

        async def call_thread(self, fun: Any, *args: Any) -> Any:
            out: list[Any] = []
            t = threading.Thread(target=lambda: out.append(fun(*args)), name="consumer-thread")
            t.start()
            t.join()
            return out[0]

    class Consumer(InOrderInput, AIOKafkaConsumer):
        def __init__(self) -> None:  # no Faust app: only the seek path is exercised
            self._thread = Thread()
            self._read_offset = {}
            self._seeks = {}
            self.log = SimpleNamespace(dev=lambda *a: None)

    c = Consumer()
    asyncio.run(c.seek(TP("clicks", 0), 5))  # type: ignore[arg-type]
    assert c._thread.ran_on == ["consumer-thread"]
    assert c._read_offset[TP("clicks", 0)] == 5

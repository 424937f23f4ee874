"""streams.delivery on Faust's own consumer: records the stream layer dropped are read again, in order,
before anything past them is applied or committed."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP, Message
from test_commit_below_held import CLICKS, consumer, delivered

from streams.delivery import drop_past_holes


class Ev:
    def __init__(self, m: Message) -> None:
        self.message = m


def hand_over(c: Any, *offsets: int) -> list[Ev]:
    """What the stream does per record: the sensor call, then the agent's window."""

    async def go() -> list[Ev]:
        evs = []
        for o in offsets:
            (m,) = delivered(c, range(o, o + 1))  # Faust's track_message calls the sensor
            evs.append(Ev(m))
        await asyncio.sleep(0)  # the scheduled seek runs (and fails: the consumer never started)
        return evs

    return asyncio.run(go())


def offsets(window: Any) -> list[int]:
    return [ev.message.offset for ev in window]


def sought(c: Any, committed: int | None) -> None:
    """What Faust does after an assignment: seek the partition to the group's commit (``None``: the
    group never committed it) and record it, before the flow resumes."""

    async def seek_to_committed() -> dict[TP, int | None]:
        return {CLICKS: committed}

    async def seek(tp: Any, offset: int) -> None:
        pass  # the client's position; this consumer never started

    c.seek_to_committed = seek_to_committed
    c._seek = seek
    c.assignment = lambda: {CLICKS}
    asyncio.run(c.perform_seek())


def test_records_past_a_dropped_range_are_dropped_and_nothing_is_committed_until_it_comes_again() -> None:
    c = consumer(hardened=True)
    sought(c, 5)
    first = hand_over(c, 5, 6)
    assert offsets(drop_past_holes(c, first)) == [5, 6]
    for ev in first:
        c.ack(ev.message)
    window = hand_over(c, 9, 10)  # 7 and 8 never reached the agent
    kept = drop_past_holes(c, window)
    assert kept == [] and all(ev.message.refcount > 0 for ev in window)  # never acknowledged by the stream
    assert c._new_offset(CLICKS) is None  # not even 7: the hole blocks the partition's commit
    hand_over(c, 10)  # a stale record queued before the seek: still past the hole
    assert c.has_hole(CLICKS)
    again = hand_over(c, 7, 8, 9, 10)  # read again from the hole, in order
    assert offsets(drop_past_holes(c, again)) == [7, 8, 9, 10]
    for ev in again:
        c.ack(ev.message)
    assert c._new_offset(CLICKS) == 11


def test_a_range_the_log_does_not_have_closes_when_its_record_comes_again() -> None:
    c = consumer(hardened=True)
    sought(c, 5)
    (five,) = hand_over(c, 5)
    hand_over(c, 8)  # offsets 6-7 missing: the seek back finds the same record first
    assert c.has_hole(CLICKS)
    (eight,) = hand_over(c, 8)
    assert not c.has_hole(CLICKS)
    (nine,) = drop_past_holes(c, hand_over(c, 9))
    for ev in (five, eight, nine):
        c.ack(ev.message)
    assert c._new_offset(CLICKS) == 6  # Faust's rule from here: 5 done, then a gap it never recorded


def test_gaps_faust_saw_in_the_log_are_not_holes() -> None:
    c = consumer(hardened=True)
    sought(c, 5)
    hand_over(c, 5)
    c._gap[CLICKS].addi(6, 8)  # what Faust's fetch loop records for a jump in the log
    hand_over(c, 8)
    assert not c.has_hole(CLICKS)


def test_a_rebalance_forgets_holes_and_expectations() -> None:
    c = consumer(hardened=True)
    sought(c, 5)
    hand_over(c, 5, 9)
    assert c.has_hole(CLICKS)
    c.stop_flow()
    assert not c.has_hole(CLICKS)
    sought(c, 20)  # another worker committed meanwhile
    hand_over(c, 20, 21)
    assert not c.has_hole(CLICKS)


def test_other_topics_are_not_watched() -> None:
    c = consumer(hardened=True)
    tp = TP("x-changelog", 0)
    c.delivered(tp, 5)
    c.delivered(tp, 50)
    assert not c.has_hole(tp)


def test_before_the_first_commit_the_log_start_is_expected() -> None:
    """A partition the group never committed: records dropped before the first one handed over
    were lost for good (the bench lost whole early ranges of such partitions)."""
    c = consumer(hardened=True)
    sought(c, None)
    window = hand_over(c, 40, 41)
    assert drop_past_holes(c, window) == [] and c.has_hole(CLICKS)
    assert c._new_offset(CLICKS) is None
    again = hand_over(c, *range(42))
    assert offsets(drop_past_holes(c, again)) == list(range(42))
    for ev in again:
        c.ack(ev.message)
    assert c._new_offset(CLICKS) == 42


def test_records_handed_over_before_the_seek_to_the_commit_never_reach_the_agent() -> None:
    """After an assignment the stream handed over a record fetched from the client's old position
    (Faust's committed offset not known yet) before the seek to the commit; the records from the
    commit came after it, and a replay exact on offsets took them for re-reads (events lost)."""
    c = consumer(hardened=True)
    c.stop_flow()  # the rebalance
    stale = hand_over(c, 107, 108)
    sought(c, 100)
    again = hand_over(c, *range(100, 109))
    window = drop_past_holes(c, stale + again)
    assert offsets(window) == list(range(100, 109))
    assert all(ev.message.refcount > 0 for ev in stale)  # never acknowledged by the stream


def test_a_record_past_a_hole_stays_dropped_when_the_hole_closes_in_the_same_window() -> None:
    """The seek back can bring the hole's records into the window that holds the record that opened
    it: that one must not reach the agent before them."""
    c = consumer(hardened=True)
    sought(c, 5)
    window = hand_over(c, 5, 9)  # 6-8 dropped before the agent: a hole, sought back
    window += hand_over(c, 6, 7, 8, 9)  # read again before the window is taken
    assert not c.has_hole(CLICKS)
    assert offsets(drop_past_holes(c, window)) == [5, 6, 7, 8, 9]


def test_input_partitions_never_committed_are_read_from_their_beginning() -> None:
    """Faust leaves a partition with no commit to the client's reset, which started one at offset
    514 of a log starting at 0 on the embedded broker: an explicit seek to 0 reads it whole."""
    from streams.delivery import InOrderInput

    done, fresh, other = TP("clicks", 0), TP("clicks", 1), TP("x-changelog", 0)

    class Base:
        def __init__(self) -> None:
            self.seeks: list[tuple[Any, int]] = []

        async def perform_seek(self) -> None:
            self.seeks.append((None, -1))  # Faust: every partition to its committed offset

        def assignment(self) -> set[Any]:
            return {done, fresh, other}

        async def seek(self, tp: Any, offset: int) -> None:
            self.seeks.append((tp, offset))

    class C(InOrderInput, Base):
        input_topics = frozenset({"clicks"})

    c = C()
    c._committed_offset = {done: 5, fresh: None, other: None}
    asyncio.run(c.perform_seek())
    assert c.seeks == [(None, -1), (fresh, 0)]


def test_a_copy_of_the_record_that_opened_a_hole_fetched_before_the_seek_does_not_close_it() -> None:
    """Only the record fetched again after the seek back, with nothing before it, says the log has
    nothing there; a copy queued from before the seek would let it reach the agent before the hole's
    records."""
    c = consumer(hardened=True)
    sought(c, 5)
    hand_over(c, 5)
    seeks = c._seeks.get(CLICKS, 0)

    async def go() -> list[bool]:
        out = [c.delivered(CLICKS, 9, seeks)]  # 6-8 dropped before the agent: a hole, sought back
        out.append(c.delivered(CLICKS, 9, seeks))  # a second copy, fetched before the seek back
        out.append(c.has_hole(CLICKS))
        out.append(c.delivered(CLICKS, 9, seeks + 1))  # fetched after it, with nothing before it
        await asyncio.sleep(0)  # the scheduled seek runs (and fails: the consumer never started)
        return out

    assert asyncio.run(go()) == [False, False, True, True]
    assert not c.has_hole(CLICKS)

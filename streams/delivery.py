"""Input records reach the engine in offset order, without holes, within a worker's life (issue #6).

Why: Faust moves a partition's read mark when the Kafka client hands a record over, but its stream
layer may still drop that record before the agent sees it (flow stopped for a rebalance, a record of
an older consumer generation, a queue emptied on resume). Nothing then reads it again in this life:
if the commit passes it, it is lost; if not, the next life reads it after later events of the same
key were applied, and an older event wins (an unfollow undone by its earlier follow: the kill -9
test's wrong-value failures). Every record handed to the agent goes past :class:`DeliverySensor`;
a record past the next expected offset of its partition, over offsets the log does have (not a
range Faust recorded as a gap in the log, e.g. transaction markers), opens a *hole*: the partition
is sought back to the hole, the records past it are dropped by the agent before the engine sees
them (they come again), and nothing of the partition is committed until the hole's first record is
delivered (or the record that showed the hole comes again first: the log has nothing there). A hole
that stays open ``HOLE_GIVE_UP_S`` is given up with an error log (commits resume).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import faust
from faust.types import TP

from socrec_online import metrics
from socrec_online.settings import Settings
from streams.topics import topic_name

log = logging.getLogger("socrec.delivery")
HOLE_GIVE_UP_S = 30.0


def _covered(gaps: Any, start: int, end: int) -> bool:
    """Is every offset in [start, end) inside one of Faust's recorded log gaps?"""
    at = start
    for iv in sorted(gaps.overlap(start, end), key=lambda iv: iv.begin):
        if iv.begin > at:
            return False
        at = max(at, iv.end)
        if at >= end:
            return True
    return at >= end


class RereadHoles:
    """Consumer mixin: tracks what the agent was handed per input partition (see the module)."""

    input_topics: frozenset[str] = frozenset()
    _committed_offset: Any
    _gap: Any

    def _delivery(self) -> tuple[dict[Any, int], dict[Any, tuple[int, int, float]], dict[Any, int]]:
        """(next offset expected per partition, open holes: partition -> (first offset, the record
        that showed it, since), the lowest offset the client fetched per partition since the last
        rebalance)."""
        return self.__dict__.setdefault("_delivery_state", ({}, {}, {}))  # type: ignore[no-any-return]

    def stop_flow(self) -> None:
        # a rebalance: every partition is sought to its committed offset, so what was expected goes
        for state in self._delivery():
            state.clear()
        super().stop_flow()  # type: ignore[misc]

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        fetched = self._delivery()[2]
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            if tp.topic in self.input_topics and message.offset < fetched.get(tp, message.offset + 1):
                fetched[tp] = message.offset
            yield tp, message

    async def perform_seek(self) -> None:
        """Faust seeks every partition to its committed offset and leaves one with no commit to the
        client's reset (``earliest``: ListOffsets). Measured on the embedded broker: a partition the
        group never committed was reset to offset 514 of a log starting at 0, and everything before
        was never read (the 5-kill bench lost whole early ranges of partitions that were empty when
        the group first started). An input partition with no commit is sought to offset 0 instead;
        on a broker whose log starts later (retention) the fetch answers OffsetOutOfRange and the
        client's reset applies as before."""
        await super().perform_seek()  # type: ignore[misc]
        for tp in self.assignment():  # type: ignore[attr-defined]
            if tp.topic in self.input_topics and not getattr(self, "_committed_offset", {}).get(tp):
                await self.seek(tp, 0)  # type: ignore[attr-defined]

    def hole_below(self, tp: Any, offset: int) -> bool:
        """True: ``offset`` lies past an open hole of ``tp`` (drop it; it is read again)."""
        hole = self._delivery()[1].get(tp)
        return hole is not None and offset > hole[0]

    def has_hole(self, tp: Any) -> bool:
        return tp in self._delivery()[1]

    def next_delivery(self, tp: Any) -> int | None:
        """The offset of ``tp`` the agent is handed next (None: not known yet)."""
        expected = self._delivery()[0].get(tp)
        return expected if expected is not None else getattr(self, "_committed_offset", {}).get(tp)

    def delivered(self, tp: Any, offset: int) -> None:
        """A record of ``tp`` at ``offset`` is handed to the agent."""
        if tp.topic not in self.input_topics:
            return
        expected, holes, fetched = self._delivery()
        hole = holes.get(tp)
        if hole is not None:
            start, trigger, since = hole
            if offset == start:
                del holes[tp]  # the hole's first record: in order again
            elif offset == trigger:
                # handed over again after the seek, with nothing before it: the log has no records
                # there (e.g. transaction markers at a committed offset)
                log.info("input %s[%d]: no records at %d-%d in the log", tp.topic, tp.partition, start, offset - 1)
                del holes[tp]
            elif offset > start and time.monotonic() - since > HOLE_GIVE_UP_S:
                log.error(
                    "input %s[%d]: offsets %d-%d never came back after %.0f s; going on without them",
                    tp.topic, tp.partition, start, offset - 1, HOLE_GIVE_UP_S,
                )  # fmt: skip
                del holes[tp]
            else:
                return
            expected[tp] = offset + 1
            return
        want = expected.get(tp)
        if want is None:
            # the first record handed over: the committed offset, or with none yet (a partition this
            # group never committed) the first offset the client fetched: the records before the
            # first commit are the easiest to drop unseen (measured: whole early ranges of partitions
            # that were still empty at the group's first start)
            committed = getattr(self, "_committed_offset", {}).get(tp)
            want = committed if committed else fetched.get(tp)
            log.info(
                "input %s[%d]: first record handed over since the assignment: %d (committed %s, first fetched %s)",
                tp.topic, tp.partition, offset, committed, fetched.get(tp),
            )  # fmt: skip
        if want is not None and offset > want and not _covered(self._gap[tp], want, offset):
            holes[tp] = (want, offset, time.monotonic())
            metrics.DELIVERY_GAPS.labels(topic=tp.topic).inc()
            log.info(  # expected at a start or rebalance: counted in socrec_consumer_delivery_gaps_total
                "input %s[%d]: record %d handed over after %d (offsets %d-%d dropped before the agent): "
                "reading again from %d",
                tp.topic, tp.partition, offset, want - 1, want, offset - 1, want,
            )  # fmt: skip
            asyncio.ensure_future(self._seek_to_hole(tp, want))
            return
        expected[tp] = offset + 1

    async def _seek_to_hole(self, tp: Any, offset: int) -> None:
        try:
            await self.seek(tp, offset)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - revoked meanwhile: the next owner reads from the commit
            log.warning("could not seek %s[%d] back to %d: %r", tp.topic, tp.partition, offset, exc)


class DeliverySensor(faust.Sensor):
    """Tells the consumer about every record a stream hands to an agent (Faust calls it per record)."""

    def __init__(self, consumer: Any) -> None:
        super().__init__()
        self._consumer = consumer

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        delivered = getattr(self._consumer(), "delivered", None)
        if delivered is not None:
            delivered(tp, offset)


def drop_past_holes(consumer: Any, window: Sequence[faust.types.EventT]) -> Sequence[faust.types.EventT]:
    """The window without the records past an open hole of their partition. Each dropped record keeps
    one extra reference, so the stream's ack never acknowledges it (it is delivered again)."""
    below = getattr(consumer, "hole_below", None)
    if below is None:
        return window
    keep = []
    for ev in window:
        m = ev.message
        if below(m.tp, m.offset):
            m.incref()
        else:
            keep.append(ev)
    return window if len(keep) == len(window) else keep


def items_behind(app: faust.App, settings: Settings) -> Callable[[str], bool]:
    """``behind(item_id)``: True while the items partition that carries ``item_id`` is assigned to
    this worker and still has records the agent was not handed (or its end is not known yet).

    Why: a click on an item this worker has not seen is held for its item's event and dead-lettered
    as unknown_item after ``unknown_item_grace_s``; after a restart with a backlog the items
    partition can be further behind than that, and the click was dead-lettered although its item
    was in the log (measured: 286 of 5,000 events in a 5-kill bench). While the item's partition
    is behind, the wait goes on (up to ``unknown_item_max_wait_s``); a partition another worker
    owns cannot be judged here (its items come through the shared-state mirror), so the grace rules.
    """
    from aiokafka.partitioner import DefaultPartitioner  # the producers' murmur2 partitioner

    name = topic_name(settings, "items")
    parts = list(range(settings.partitions))
    partitioner = DefaultPartitioner()

    def behind(item_id: str) -> bool:
        consumer = app._consumer
        if consumer is None:
            return False
        tp = TP(name, int(partitioner(item_id.encode("utf-8"), parts, parts)))
        try:
            if tp not in consumer.assignment():
                return False
            end = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - rebalancing: nothing to judge by, the grace rules
            return False
        nxt = getattr(consumer, "next_delivery", lambda _tp: None)(tp)
        return end is None or nxt is None or nxt < end

    return behind

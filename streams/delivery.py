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
from collections.abc import Sequence
from typing import Any

import faust

from socrec_online import metrics

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

    def _delivery(self) -> tuple[dict[Any, int], dict[Any, tuple[int, int, float]]]:
        """(next offset expected per partition, open holes: partition -> (first offset, the record
        that showed it, since))."""
        return self.__dict__.setdefault("_delivery_state", ({}, {}))  # type: ignore[no-any-return]

    def stop_flow(self) -> None:
        # a rebalance: every partition is sought to its committed offset, so what was expected goes
        expected, holes = self._delivery()
        expected.clear()
        holes.clear()
        super().stop_flow()  # type: ignore[misc]

    def hole_below(self, tp: Any, offset: int) -> bool:
        """True: ``offset`` lies past an open hole of ``tp`` (drop it; it is read again)."""
        hole = self._delivery()[1].get(tp)
        return hole is not None and offset > hole[0]

    def has_hole(self, tp: Any) -> bool:
        return tp in self._delivery()[1]

    def delivered(self, tp: Any, offset: int) -> None:
        """A record of ``tp`` at ``offset`` is handed to the agent."""
        if tp.topic not in self.input_topics:
            return
        expected, holes = self._delivery()
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
            committed = getattr(self, "_committed_offset", {}).get(tp)
            want = committed if committed else None
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

"""Input records reach the engine once each, in offset order, and no commit passes one that was not
applied: the consumer side of issue #6 (crash recovery) and #7 (rebalances).

Faust's read marks, stream queues and commit rule leave five ways to skip or reorder an input
record; :class:`InOrderInput` and :class:`CommitBelowHeld` close them, on any broker, as mixins over
Faust's consumer (:func:`harden_consumer`):

- *Fetched before a seek, delivered after it.* After a rebalance Faust seeks every partition to its
  committed offset while its fetch loop runs on (the flow resumes for changelog recovery), so stale
  records still arrive, overwrite the read mark the seek set, and Faust drops the records fetched
  again as already read, or records the offsets below a stale record as a gap and counts them
  acknowledged (a worker that took over a killed one's partitions never applied 4-50 of their
  events, 1 run in 3 of tests/integration/test_scale_out.py). ``getmany`` drops what lies at or past
  the client's position, lets the read mark follow a record below it, and seeks back once per mark
  when a record jumps past it; ``resume_flow`` seeks the input partitions to their commits once more,
  because ``flow_control.resume()`` empties the stream queues (measured: 43 records gone).
- *Handed over, then dropped before the agent.* Faust moves the read mark when the client hands a
  record over, but its stream layer may still drop it (flow stopped, an older generation, a queue
  emptied on resume); if a commit passes it, it is lost; if not, the next life applies it after later
  events of the same key (an unfollow undone by its earlier follow: the kill -9 test's wrong values).
  :class:`DeliverySensor` reports every record handed to the agent; one past the next expected
  offset, over offsets the log does have (not a gap Faust recorded, e.g. transaction markers), opens
  a *hole*: the partition is sought back, the agent drops the records past it
  (:func:`drop_past_holes`), and nothing of the partition is committed until the hole's first record
  comes (or the record that showed it comes again first: the log has nothing there). A hole open
  ``HOLE_GIVE_UP_S`` is given up with an error log.
- *Handed over before the seek to the commit.* After an assignment the stream can hand over records
  fetched from a position the client held before Faust sought the partition to the group's commit,
  and Faust's committed offset is not known yet then (``None``): a first record past the commit was
  taken for the start, the records from the commit came after it, and a replay exact on offsets
  (``socrec_online.service.state.replayed``) took them for re-reads (``socrec bench reliability``
  lost 120 events). Until ``perform_seek`` has sought an input partition to its commit (or the log
  start) and set the offset it expects from there, every record of it is refused.
- *A partition never committed.* Faust leaves it to the client's reset, which on the embedded broker
  started one at offset 514 of a log starting at 0: ``perform_seek`` reads it from 0.
- *A held record committed over.* See :class:`CommitBelowHeld`.

Whether a record reaches the agent is decided when it is handed over (``delivered``): one refused
then, or past an open hole, is dropped from the window, even when the records before it came again
in the same window; so per partition the agent sees offsets in order from the commit, never one past
a record it was not handed (a partition can go back, to the commit after a seek: re-reads).

Records read twice change nothing (``socrec_online.service.state.replayed``, or event ids where
the worker passes no positions), and a worker process drops what it handled already
(``streams.rereads``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


class _Hole(NamedTuple):
    start: int  # the first offset the agent was not handed
    trigger: int  # the record that showed the hole
    since: float  # time.monotonic() when it opened
    seeks: int  # seeks of the partition done when it opened (``InOrderInput.on_handed_over``)


@dataclass
class _Marks:
    """What the agent was handed per input partition since the last rebalance."""

    # the next offset due; set by ``perform_seek`` (the commit): a partition not in it is not sought yet
    expected: dict[Any, int] = field(default_factory=dict)
    holes: dict[Any, _Hole] = field(default_factory=dict)  # open holes
    refused: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)  # messages not for the agent
    unsought: set[Any] = field(default_factory=set)  # partitions a refusal before the seek was logged for

    def clear(self) -> None:
        self.expected.clear()
        self.holes.clear()
        self.unsought.clear()


class InOrderInput:
    """Consumer mixin: input records reach the agent in offset order, each read again when Faust
    skipped or dropped it (see the module)."""

    input_topics: frozenset[str] = frozenset()
    _read_offset: Any
    _committed_offset: Any
    _gap: Any
    _thread: Any
    _active_partitions: Any
    _reseek: asyncio.Future[None] | None = None
    _flow_stops = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._marks = _Marks()
        self._jumped_at: dict[Any, int] = {}  # the read mark a jump was read again from, per partition
        self._seeks: dict[Any, int] = {}  # seeks done per partition
        self._fetched_after: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # seeks then

    # -- a rebalance: seek, stop and resume -------------------------------------------------------

    def stop_flow(self) -> None:
        # every partition is sought to its committed offset: what was expected goes
        self._marks.clear()
        self._flow_stops += 1
        super().stop_flow()  # type: ignore[misc]

    def resume_flow(self) -> None:
        """With input partitions active, seek them to their committed offsets once more before the
        flow resumes: Faust empties every stream queue just before, and records fetched after the
        rebalance's seek and still queued are gone while the fetch position is past them."""
        if not any(tp.topic in self.input_topics for tp in self._active_partitions or ()):
            super().resume_flow()  # type: ignore[misc]
            return
        self._reseek = asyncio.ensure_future(self._seek_inputs_then_resume(self._flow_stops))

    async def _seek_inputs_then_resume(self, stops: int) -> None:
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 - the rebalance goes on; a later one seeks again
            log.warning("could not seek the input partitions to their committed offsets again: %r", exc)
            with contextlib.suppress(Exception):  # not to refuse every record: a start too low is a hole
                self._expect_from_commits()
        if self._flow_stops == stops:  # not stopped again meanwhile (a next rebalance)
            super().resume_flow()  # type: ignore[misc]

    async def perform_seek(self) -> None:
        """Faust seeks every partition to its committed offset and leaves one with no commit to the
        client's reset; an input partition with no commit is sought to offset 0 instead (on a broker
        whose log starts later, retention, the fetch answers OffsetOutOfRange and the reset applies)."""
        await super().perform_seek()  # type: ignore[misc]
        for tp in self.assignment():  # type: ignore[attr-defined]
            if tp.topic in self.input_topics and not getattr(self, "_committed_offset", {}).get(tp):
                await self.seek(tp, 0)  # type: ignore[attr-defined]
        self._expect_from_commits()

    def _expect_from_commits(self) -> None:
        """Every assigned input partition is due from its committed offset (0: none) from now on."""
        committed = getattr(self, "_committed_offset", {})
        for tp in self.assignment():  # type: ignore[attr-defined]
            if tp.topic in self.input_topics:
                start = committed.get(tp) or 0
                self._marks.expected[tp] = max(0, start)
                self._marks.holes.pop(tp, None)  # the seek reads it again from the commit

    async def _seek(self, partition: Any, offset: int) -> None:
        """Seek on the consumer's own thread. Faust's ``_seek`` calls the Kafka client from the
        caller's thread while the consumer thread fetches: aiokafka's ``seek_to`` and
        ``fetched_records`` both check-then-delete the same fetch buffer, and the loser raised
        ``KeyError: TopicPartition(...)`` from ``fetched_records``, crashing the worker. Every
        ``Consumer.seek`` (this module's, the offsets and recovery guards') goes through here."""
        thread = self._thread
        await thread.call_thread(thread.seek, partition, offset)
        self._seeks[partition] = self._seeks.get(partition, 0) + 1

    # -- what the client fetched --------------------------------------------------------------------

    def _fetch_position(self, tp: Any) -> int | None:
        """The offset the Kafka client fetches next for ``tp`` (None: unknown, e.g. awaiting a reset)."""
        try:
            assignment = self._thread._ensure_consumer()._subscription.subscription.assignment
            state = assignment.state_value(tp)
        except Exception:  # noqa: BLE001 - no assignment (rebalancing): Faust's own rules apply
            return None
        return state.position if state is not None and state.has_valid_position else None

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        rewound: set[Any] = set()
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            if tp in rewound:
                continue  # the rest of a fetch made before the seek below
            if tp.topic not in self.input_topics:
                yield tp, message
                continue
            offset = message.offset
            position = self._fetch_position(tp)
            if position is not None and offset >= position:
                continue  # stale: the client reads it again from its position
            mark = self._read_offset.get(tp)
            # the group's commit: everything below it is applied, so never read again from there
            committed = getattr(self, "_committed_offset", {}).get(tp)
            if mark is not None and offset < mark:
                self._read_offset[tp] = offset  # fetched after a seek back: the mark is stale
            elif (
                mark is not None
                and offset > mark + 1
                and self._jumped_at.get(tp) != mark  # the same jump again: a real hole in the log
                and (committed is None or offset > committed)  # else the mark is stale: the record is due
            ):
                back = mark if committed is None else max(mark, committed)
                self._jumped_at[tp] = mark
                rewound.add(tp)
                log.info(  # expected around a rebalance
                    "input %s[%d]: record %d after read mark %d: reading again from %d",
                    tp.topic, tp.partition, offset, mark, back,
                )  # fmt: skip
                await self.seek(tp, back)  # type: ignore[attr-defined]
                continue
            with contextlib.suppress(TypeError):  # a message with no weak references: not known
                self._fetched_after[message] = self._seeks.get(tp, 0)
            yield tp, message

    # -- what the agent was handed --------------------------------------------------------------------

    def hole_below(self, tp: Any, offset: int) -> bool:
        """True: ``offset`` lies past an open hole of ``tp`` (drop it; it is read again)."""
        hole = self._marks.holes.get(tp)
        return hole is not None and offset > hole.start

    def refused(self, message: Any) -> bool:
        """True: ``message`` was refused when it was handed over (``delivered``): drop it."""
        return message in self._marks.refused

    def on_handed_over(self, message: Any) -> None:
        """The stream hands ``message`` to the agent (the sensor): remember it when it is refused."""
        if not self.delivered(message.tp, message.offset, self._fetched_after.get(message)):
            self._marks.refused.add(message)

    def has_hole(self, tp: Any) -> bool:
        return tp in self._marks.holes

    def next_delivery(self, tp: Any) -> int | None:
        """The offset of ``tp`` the agent is handed next (None: not known yet)."""
        expected = self._marks.expected.get(tp)
        return expected if expected is not None else getattr(self, "_committed_offset", {}).get(tp)

    def delivered(self, tp: Any, offset: int, seeks: int | None = None) -> bool:
        """A record of ``tp`` at ``offset`` is handed to the agent. False: refused (it lies past an
        open hole, or its partition was not sought to its commit yet): it is dropped and read again.
        ``seeks``: the partition's seeks done when the record was fetched (None: not known)."""
        if tp.topic not in self.input_topics:
            return True
        marks = self._marks
        hole = marks.holes.get(tp)
        if hole is not None:
            if offset == hole.start:
                del marks.holes[tp]  # the hole's first record: in order again
            elif offset == hole.trigger and (seeks is None or seeks > hole.seeks):
                # fetched again after the seek, with nothing before it: the log has no records there
                # (e.g. transaction markers at a committed offset); a copy fetched before the seek
                # and queued says nothing
                log.info("input %s[%d]: no records at %d-%d in the log", tp.topic, tp.partition, hole.start, offset - 1)
                del marks.holes[tp]
            elif offset > hole.start and time.monotonic() - hole.since > HOLE_GIVE_UP_S:
                log.error(
                    "input %s[%d]: offsets %d-%d never came back after %.0f s; going on without them",
                    tp.topic, tp.partition, hole.start, offset - 1, HOLE_GIVE_UP_S,
                )  # fmt: skip
                del marks.holes[tp]
            else:
                return offset < hole.start  # below the hole: read again from a seek, in order
            marks.expected[tp] = offset + 1
            return True
        want = marks.expected.get(tp)
        if want is None:
            # fetched from where the client was before the seek to the group's commit (which Faust
            # may not know yet): the seek reads it again
            if tp not in marks.unsought:
                marks.unsought.add(tp)
                log.info(
                    "input %s[%d]: record %d handed over before the seek to the committed offset: read again",
                    tp.topic, tp.partition, offset,
                )  # fmt: skip
            return False
        if offset > want and not _covered(self._gap[tp], want, offset):
            marks.holes[tp] = _Hole(want, offset, time.monotonic(), self._seeks.get(tp, 0))
            metrics.DELIVERY_GAPS.labels(topic=tp.topic).inc()
            log.info(  # expected at a start or rebalance: counted in socrec_consumer_delivery_gaps_total
                "input %s[%d]: record %d handed over after %d (offsets %d-%d dropped before the agent): "
                "reading again from %d",
                tp.topic, tp.partition, offset, want - 1, want, offset - 1, want,
            )  # fmt: skip
            asyncio.ensure_future(self._seek_to_hole(tp, want))
            return False
        marks.expected[tp] = offset + 1
        return True

    async def _seek_to_hole(self, tp: Any, offset: int) -> None:
        try:
            await self.seek(tp, offset)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - revoked meanwhile: the next owner reads from the commit
            log.warning("could not seek %s[%d] back to %d: %r", tp.topic, tp.partition, offset, exc)


class CommitBelowHeld:
    """Consumer mixin: an input partition's commit never passes a record handed to the stream and
    not yet acknowledged, nor an open hole.

    Why: Faust commits the first consecutive run of acknowledged offsets and checks it against the
    committed offset with ``min(acked) - committed > 1``, while the committed offset is the *next*
    record to read; so when the record at the committed offset is still held (an interaction
    waiting for its item, a window held by catch-up merging) and the next one is acknowledged,
    Faust commits past it, and with no commit yet (a new group) it checks nothing at all. A crash
    before the held record is applied then loses it: the kill -9 test lost early events of a
    partition that way (likes on items not published yet). The rule here needs no offset
    arithmetic, so a real hole in the log (transaction markers) still commits as before.
    """

    input_topics: frozenset[str] = frozenset()
    _acked: Any
    _gap: Any
    _unacked_messages: Any
    _committed_offset: Any
    _held_now: dict[Any, int] | None = None

    def _lowest_held(self) -> dict[Any, int]:
        """Per input partition, the lowest offset at or past its commit handed out and not acknowledged."""
        low: dict[Any, int] = {}
        committed = self._committed_offset
        for m in list(self._unacked_messages):
            tp = m.tp
            if m.acked or tp.topic not in self.input_topics or m.offset < (committed.get(tp) or 0):
                continue
            if m.offset < low.get(tp, m.offset + 1):
                low[tp] = m.offset
        return low

    def _filter_committable_offsets(self, tps: Iterable[Any]) -> dict[Any, int]:
        self._held_now = self._lowest_held()  # one pass over the unacknowledged records per commit
        try:
            return super()._filter_committable_offsets(tps)  # type: ignore[misc, no-any-return]
        finally:
            self._held_now = None

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if tp.topic in self.input_topics and getattr(self, "has_hole", lambda _tp: False)(tp):
            return None  # records below ``acked`` were dropped before the agent: read again first
        if acked and tp.topic in self.input_topics:
            lowest = min(acked)
            for interval in self._gap[tp]:  # offsets Faust saw no record for count as done
                lowest = min(lowest, interval.begin)
            held = (self._held_now if self._held_now is not None else self._lowest_held()).get(tp)
            if held is not None and held < lowest:
                return None  # a held record lies below the acknowledged run: wait for it
        return super()._new_offset(tp)  # type: ignore[misc, no-any-return]


def harden_consumer(app: faust.App, input_topics: Iterable[str]) -> None:
    """Make the app's consumer an :class:`InOrderInput` and :class:`CommitBelowHeld` (before anything
    creates it), and tell it what the agent is handed."""
    if app._consumer is not None:
        raise RuntimeError("the consumer exists already: its class can no longer be set")
    base = app.transport.Consumer
    if not issubclass(base, InOrderInput):
        app.transport.Consumer = type(  # type: ignore[misc]
            f"Hardened{base.__name__}",
            (CommitBelowHeld, InOrderInput, base),
            {"input_topics": frozenset(input_topics)},
        )
    app.sensors.add(DeliverySensor(lambda: app._consumer))


class DeliverySensor(faust.Sensor):
    """Tells the consumer about every record a stream hands to an agent (Faust calls it per record)."""

    def __init__(self, consumer: Any) -> None:
        super().__init__()
        self._consumer = consumer

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        handed_over = getattr(self._consumer(), "on_handed_over", None)
        if handed_over is not None:
            handed_over(message)


def drop_past_holes(consumer: Any, window: Sequence[faust.types.EventT]) -> Sequence[faust.types.EventT]:
    """The window without the records refused when they were handed over, and those past an open
    hole of their partition. Each dropped record keeps one extra reference, so the stream's ack never
    acknowledges it (it is delivered again)."""
    below = getattr(consumer, "hole_below", None)
    refused = getattr(consumer, "refused", None)
    if below is None or refused is None:
        return window
    keep = []
    for ev in window:
        m = ev.message
        if refused(m) or below(m.tp, m.offset):
            m.incref()
        else:
            keep.append(ev)
    return window if len(keep) == len(window) else keep


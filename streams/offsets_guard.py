"""Keep consuming when an input partition's log goes backwards under the worker.

Why: a broker that lost its data (the embedded Tansu keeps everything in memory, so a restart
comes back empty; on Apache Kafka an unclean leader election or a re-created topic) restarts
its logs at offset 0 while the worker's consumer sits at its old positions. Apache Kafka then
answers OffsetOutOfRange and the client applies ``auto_offset_reset``; Tansu answers a fetch
past its new log end with an empty result, so the worker would wait at offset 500 while the
first 500 records produced after the restart go by unseen, and once producers refill the log
past 500 it reads on from there as if nothing happened. Even where the client does reset
itself, Faust's own per-partition marks stay behind: it drops records below its read mark,
acks only offsets at or above its committed mark and commits only past it.

So the guard remembers, per assigned input partition, a record this worker consumed from it
(offset, timestamp, key: a Faust sensor) and, every ``offsets_guard_interval_s``, fetches the
record at that offset again with a group-less probe consumer (one fetch for all partitions).
The anchor is first the first record consumed; each check that finds it moves it to the latest
record consumed before that check's fetch. Why not keep the first: Tansu answers a fetch with
every batch from the requested offset up to the request's byte limit (5 MB; it ignores the
per-partition limit), so a probe at the start of the log read the whole input log every check,
and the cost, paid in the worker's tail latency, grew with the log. The log went backwards when that record is gone and the log now ends before it
(``log_shorter``) or another record sits at its offset (``record_replaced``: the log was refilled
past the old position before the check, and the consumer may already read on from there).
Comparing positions with ListOffsets cannot tell either: Tansu reports a log end as the start
of its last record batch + 1, so a position past that end is normal there, and a refilled log
looks healthy. The partition is then resumed at its earliest offset (a warning and
``socrec_consumer_offset_resets_total{topic,reason}``) with Faust's marks cleared; records read
twice are idempotent on event_id. A third case, ``behind_read_mark``: the client moved its
position back below Faust's read mark by itself (OffsetOutOfRange + auto reset), seen in two
checks in a row (Faust's own seek after a rebalance passes through that state for a moment):
Faust's marks follow the position.

After a log went backwards the worker writes its whole table state to the changelogs again
(between two micro-batches): the broker lost those too, and otherwise a later restart of the
worker would recover only the keys written since. The engine state itself stays in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from aiokafka.structs import TopicPartition

from socrec_online import metrics
from socrec_online.settings import Settings
from streams.app import EMBEDDED_FETCH_MAX_WAIT_MS, kafka_client_kwargs
from streams.tables import FENCE_KEY, fence, settle
from streams.topics import base_name

log = logging.getLogger("socrec.offsets")
CHECK_TIMEOUT_S = 10.0
PROBE_POLLS = 4
PROBE_POLL_MS = 250
PROBE_PARTITION_BYTES = 4096  # about one record batch per partition: only its first record is looked at


class Seen(NamedTuple):
    """A record as the worker consumed it."""

    offset: int
    timestamp_ms: int | None
    key: bytes | None


def _seen(offset: int, message: Any) -> Seen:
    ts = getattr(message, "timestamp", None)
    return Seen(offset, round(ts * 1000) if ts is not None else None, getattr(message, "key", None))


class OffsetsGuard(faust.Sensor):
    """Detects input partitions whose log went backwards under the consumer, and resumes them."""

    def __init__(
        self, app: faust.App, settings: Settings, input_topics: Iterable[str], pipeline: Any = None
    ) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.inputs = set(input_topics)
        self.pipeline = pipeline  # streams.pipeline.Pipeline: its tables are re-published after a data loss
        self.anchors: dict[Any, Seen] = {}  # per partition: a record consumed before the last check
        self._last: dict[Any, tuple[int, Any]] = {}  # per partition: the latest (offset, message) consumed
        self._probe: AIOKafkaConsumer | None = None
        self._probe_tps: set[TopicPartition] = set()
        self._suspect: dict[Any, tuple[int, int]] = {}
        self.resets = 0

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self._last[tp] = (offset, message)
        if tp not in self.anchors:
            self.anchors[tp] = _seen(offset, message)

    async def check(self) -> list[tuple[Any, str, int]]:
        """One round: [(partition, reason, new offset)] for every partition resumed elsewhere now."""
        app = self.app
        if getattr(app, "rebalancing", False):
            return []
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in self.inputs]
        if not tps:
            return []
        anchors = {tp: self.anchors[tp] for tp in tps if tp in self.anchors}
        # Consumed before this check's fetch: if the broker lost its data before that record was read,
        # the anchor (older still) is what this fetch finds gone, so the record can be the next anchor.
        latest = {tp: _seen(*self._last[tp]) for tp in anchors if tp in self._last}
        now = await self._fetch({tp: a.offset for tp, a in anchors.items()})
        missing = [TopicPartition(tp.topic, tp.partition) for tp in anchors if tp not in now]
        ends = await self._probe.end_offsets(missing) if missing and self._probe is not None else {}
        backwards: dict[Any, str] = {}
        for tp, anchor in anchors.items():
            got = now.get(tp)
            if got is None:
                end = ends.get(TopicPartition(tp.topic, tp.partition))
                if end is not None and anchor.offset >= end:
                    backwards[tp] = "log_shorter"
                else:  # deleted by retention or compaction, the log did not go backwards:
                    self.anchors.pop(tp, None)  # the next record consumed is the anchor
            elif got != anchor:
                backwards[tp] = "record_replaced"
            elif tp in latest and latest[tp].offset > anchor.offset:
                self.anchors[tp] = latest[tp]  # the next probe reads from near the log end
        found: list[tuple[Any, str, int]] = []
        if backwards:
            earliest = await consumer.earliest_offsets(*backwards)
            found += [(tp, reason, int(earliest.get(tp) or 0)) for tp, reason in backwards.items()]
        read_marks = getattr(consumer, "_read_offset", {})
        for tp in tps:
            read = read_marks.get(tp)
            pos = None if tp in backwards or read is None else await consumer.position(tp)
            if read is not None and pos is not None and read > pos:
                if self._suspect.get(tp) == (read, pos):
                    found.append((tp, "behind_read_mark", pos))
                    self._suspect.pop(tp, None)
                else:
                    self._suspect[tp] = (read, pos)
            else:
                self._suspect.pop(tp, None)
        for tp, reason, offset in found:
            log.warning(
                "input partition %s[%d]: the broker's log went backwards under the consumer (%s; first record "
                "read %s, now %s; did the broker lose its data?): resuming at offset %d",
                tp.topic, tp.partition, reason, self.anchors.get(tp), now.get(tp), offset,
            )  # fmt: skip
            await rewind(consumer, tp, offset)
            if self.pipeline is not None:
                self.pipeline.marks.reset(tp)  # its offsets name other records now (streams/rereads.py)
            self.anchors.pop(tp, None)  # the first record read from the new log is the next anchor
            self._last.pop(tp, None)
            metrics.OFFSET_RESETS.labels(topic=base_name(self.settings, tp.topic), reason=reason).inc()
            self.resets += 1
        return found

    async def after_loss(self) -> None:
        """The broker lost data: its topics and the worker's table state, written again."""
        await self.recreate_topics()
        if self.pipeline is not None:
            n = await republish(self.pipeline)
            log.warning("re-published %d table values to the changelogs (the broker lost them too)", n)

    async def recreate_topics(self) -> None:
        """Create the worker's topics again where the broker lost them, changelogs included.

        Needed on Tansu: a producer that still holds the old metadata keeps writing to a topic
        the restarted broker does not list, and a later table recovery then waits forever for
        records it cannot fetch (measured: "No event received for active tp" for minutes).
        """
        from streams.admin import ensure_topics
        from streams.topics import required_topics

        wanted = required_topics(self.settings, passthrough=self.pipeline is None)
        if self.pipeline is not None:
            for table in self.pipeline.tables.values():
                wanted[table.changelog_topic.get_topic_name()] = self.settings.partitions
        created = [n for n, how in (await ensure_topics(self.settings, wanted)).items() if how == "created"]
        if created:
            log.warning("re-created %d topics the broker lost: %s", len(created), ", ".join(sorted(created)))

    async def _fetch(self, offsets: Mapping[Any, int]) -> dict[Any, Seen]:
        """The record at each wanted offset as the broker holds it now (absent: the broker has none)."""
        out: dict[Any, Seen] = {}
        if not offsets:
            return out
        probe = await self._probe_consumer()
        want = {TopicPartition(tp.topic, tp.partition): (tp, off) for tp, off in offsets.items()}
        if not set(want) <= self._probe_tps:  # the assignment changes only when the partitions do
            self._probe_tps |= set(want)
            probe.assign(sorted(self._probe_tps))
        probe.pause(*self._probe_tps)
        for ktp, (_tp, off) in want.items():
            probe.seek(ktp, off)
        open_ = set(want)
        probe.resume(*open_)
        try:
            for _ in range(PROBE_POLLS):
                if not open_:
                    break
                try:
                    got = await probe.getmany(*open_, timeout_ms=PROBE_POLL_MS)
                except OffsetOutOfRangeError as exc:
                    gone = set(exc.args[0]) if exc.args and isinstance(exc.args[0], dict) else set(open_)
                    probe.pause(*(gone & open_))
                    open_ -= gone
                    continue
                for ktp, msgs in got.items():
                    if ktp in open_ and msgs:
                        m = msgs[0]  # the wanted offset, or the first record after it if that one is gone
                        out[want[ktp][0]] = Seen(m.offset, m.timestamp, m.key)
                        open_.discard(ktp)
                        probe.pause(ktp)
        finally:
            probe.pause(*self._probe_tps)  # no background fetching between checks
        return out

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._probe is None:
            kw: dict[str, Any] = (
                {"fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS} if not self.settings.broker_caps.prompt_fetch else {}
            )
            self._probe = AIOKafkaConsumer(
                **kafka_client_kwargs(self.settings),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="none",
                max_partition_fetch_bytes=PROBE_PARTITION_BYTES,
                **kw,
            )
            self._probe_tps = set()
            await self._probe.start()  # stop() closes it even when a timeout cuts this short
        return self._probe

    async def stop(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(Exception):
                await probe.stop()


async def rewind(consumer: Any, tp: Any, offset: int) -> None:
    """Seek ``tp`` to ``offset`` and clear Faust's marks for it, so records below the old ones
    are neither dropped (read mark) nor left uncommitted (acked/committed marks)."""
    await consumer.seek(tp, offset)  # sets Faust's read mark too
    for name in ("_acked", "_acked_index", "_gap"):
        marks = getattr(consumer, name, None)
        if marks is not None:
            marks.pop(tp, None)
    committed = getattr(consumer, "_committed_offset", None)
    if committed is not None:
        committed[tp] = None


async def republish(pipeline: Any) -> int:
    """Write every table value to its changelog again, between two batches; returns how many."""
    async with pipeline.paused():
        n = 0
        written: list[str] = []
        for name, table in pipeline.tables.items():
            for key, value in list(table.items()):
                if key == FENCE_KEY or value is None:
                    continue
                table.send_changelog(None, key, value)  # partitioned like every other write
                n += 1
            if len(table):
                written.append(name)
        if pipeline.settings.broker_caps.needs_changelog_fences:
            await fence(pipeline.tables, written, pipeline.settings.partitions, 0)
        await settle(pipeline.tables, pipeline.settings)
        return n


def register_offsets_guard(
    app: faust.App, settings: Settings, input_topics: Iterable[str], pipeline: Any = None
) -> OffsetsGuard | None:
    """Run the guard on a timer of the app (None when ``offsets_guard_interval_s`` is 0 or the broker
    keeps its logs across restarts, as Apache Kafka does)."""
    if settings.offsets_guard_interval_s <= 0 or not settings.broker_caps.needs_offsets_guard:
        return None
    guard = OffsetsGuard(app, settings, input_topics, pipeline)
    app.sensors.add(guard)

    @app.timer(settings.offsets_guard_interval_s)
    async def _guard_offsets() -> None:
        try:
            found = await asyncio.wait_for(guard.check(), timeout=CHECK_TIMEOUT_S)
        except (TimeoutError, KafkaError, OSError) as exc:
            # the broker is away: the next round checks again once it is back
            log.debug("offsets guard: broker not answering (%r)", exc)
            await guard.stop()
            return
        except Exception as exc:  # noqa: BLE001 - a watchdog that cannot look must not stop the worker
            log.warning(
                "offsets guard: check failed (%r); retrying in %.1fs", exc, settings.offsets_guard_interval_s
            )
            await guard.stop()
            return
        if any(reason != "behind_read_mark" for _tp, reason, _off in found):
            try:  # not under the check's timeout: it waits for a batch boundary
                await guard.after_loss()
            except Exception:
                log.exception(
                    "could not write the topics and tables the broker lost; a later restart of this "
                    "worker recovers only the keys written since"
                )

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _stop_guard(sender: Any, **kwargs: Any) -> None:
        await guard.stop()

    return guard

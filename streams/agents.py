"""The agents: decode and validate, call the library, emit. Nothing else lives here.

One agent consumes every input topic as one stream of micro-batches (``take_events``), so a
batch that mixes items, follows and clicks is applied by the engine in one call, in order,
and every user it touches is scored once. Engine calls run on one dedicated thread (torch
releases the GIL), so the event loop keeps fetching, heartbeating and producing meanwhile;
the thread is single, so engine calls never overlap.

Inputs arrive on several topics and partitions, so a click can overtake the ``items`` event it
refers to. Such an interaction is held (its ack too, so its offset is not committed and a crash
loses nothing) until its item arrives or ``unknown_item_grace_s`` runs out; only then is it
dead-lettered as ``unknown_item``.

Failure policy: a bad record is a dead letter (with its origin) and never stops the agent;
an exception from the library is a bug or an infrastructure fault, so the agent crashes the
worker (``CrashingSupervisor``) instead of dying quietly, and at-least-once delivery replays
the unacknowledged batch on restart (the engine is idempotent on event_id).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust
import orjson
from mode import CrashingSupervisor

from socrec_online import metrics
from socrec_online.events import Click, Comment, Event, ItemPublished, Like, key_of
from socrec_online.service.decode import DeadLetterReason, DecodeError, dead_letter_record, decode_event
from socrec_online.settings import Settings
from streams.output import OutputProducer
from streams.tables import apply_updates, snapshot_tables
from streams.topics import DEAD_LETTERS, PASSTHROUGH, RECOMMENDATIONS, Topics, base_name, topic_name

log = logging.getLogger("socrec.streams")
T = TypeVar("T")


class Origin:
    """Where a record came from (for dead letters), what it carried, and its Faust event (for acks)."""

    __slots__ = ("event", "key", "offset", "partition", "raw", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        event: faust.types.EventT | None = None,
    ) -> None:
        self.topic, self.partition, self.offset, self.key, self.raw = topic, partition, offset, key, raw
        self.event = event


def origin_of(event: faust.types.EventT, settings: Settings) -> Origin:
    msg = event.message
    raw = event.value if isinstance(event.value, bytes | None) else bytes(event.value)
    key = event.key if isinstance(event.key, bytes | None) else str(event.key).encode()
    return Origin(base_name(settings, msg.topic), msg.partition, msg.offset, key, raw, event)


class Deferred:
    """An interaction waiting for its item's event; its ack is held so the offset is not committed."""

    __slots__ = ("deadline", "event", "origin")

    def __init__(self, event: Event, origin: Origin, deadline: float) -> None:
        self.event, self.origin, self.deadline = event, origin, deadline


class DeadLetters:
    """Publishes dead letters: the DESIGN.md record, keyed like the bad record, counted by reason."""

    def __init__(self, out: OutputProducer, settings: Settings) -> None:
        self.out, self.settings = out, settings
        self.topic = topic_name(settings, DEAD_LETTERS)

    async def send(self, origin: Origin, reason: DeadLetterReason | str, error: str) -> None:
        record = dead_letter_record(
            origin.topic,
            origin.partition,
            origin.offset,
            reason,
            error,
            origin.raw,
            self.settings.dead_letter_payload_bytes,
        )
        await self.out.send(self.topic, origin.key, orjson.dumps(record))
        metrics.DEAD_LETTERS.labels(reason=str(reason)).inc()


def decode_batch(
    batch: Sequence[faust.types.EventT], settings: Settings
) -> tuple[list[Event], list[Origin], list[tuple[Origin, DecodeError]]]:
    """Decode every record; good ones keep their batch order, bad ones keep their origin."""
    events: list[Event] = []
    origins: list[Origin] = []
    bad: list[tuple[Origin, DecodeError]] = []
    for fe in batch:
        origin = origin_of(fe, settings)
        try:
            events.append(decode_event(origin.topic, origin.raw, settings))
            origins.append(origin)
        except DecodeError as exc:
            bad.append((origin, exc))
    return events, origins, bad


class Pipeline:
    """The full service path of one micro-batch: decode -> engine -> tables -> recommendations."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        tables: Mapping[str, faust.Table],
        engine: Any,
        out: OutputProducer,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.tables = tables
        self.engine = engine
        self.out = out
        self.rec_topic = topic_name(settings, RECOMMENDATIONS)
        self.dead_letters = DeadLetters(out, settings)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socrec-engine")
        self._restore_pending = True
        self._on_ready = on_ready
        self._lock = asyncio.Lock()  # one batch at a time: engine calls and table writes stay in order
        self._deferred: list[Deferred] = []
        self._ack: Callable[[faust.types.EventT], Awaitable[Any]] | None = None
        self.batches = 0
        self.restores = 0

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def restore(self) -> None:
        async with self._lock:
            await self._restore()

    async def _restore(self) -> None:
        # After a recovery Faust seeks every assigned partition back to its committed offset, so
        # events held for their items are delivered again: forget them here.
        self._deferred.clear()
        state = snapshot_tables(self.tables)
        t0 = time.perf_counter()
        await self._call(self.engine.restore, state)
        self._restore_pending = False
        self.restores += 1
        sizes = {k: len(v) for k, v in state.items()}
        log.info("engine restored from tables %s in %.2fs", sizes, time.perf_counter() - t0)
        if self._on_ready is not None:
            self._on_ready()
            self._on_ready = None

    def bind_acks(self, ack: Callable[[faust.types.EventT], Awaitable[Any]]) -> None:
        """The stream's ack: used to release events whose acks were held while deferred."""
        self._ack = ack

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    async def handle(self, batch: Sequence[faust.types.EventT]) -> None:
        async with self._lock:
            if self._restore_pending:
                await self._restore()
            metrics.BATCH_EVENTS.observe(len(batch))
            with metrics.stage("decode"):
                events, origins, bad = decode_batch(batch, self.settings)
            for origin, exc in bad:
                metrics.EVENTS.labels(topic=origin.topic, outcome="dead_letter").inc()
                await self.dead_letters.send(origin, exc.reason, exc.detail)
            await self._apply(events, origins)
            await self.out.flush()  # delivered before this batch's offsets can be committed
            self.batches += 1
            metrics.mark_batch()

    async def retry_deferred(self) -> None:
        """Timer: release held interactions whose item arrived, or whose grace ran out."""
        if self._deferred and not self._lock.locked():
            async with self._lock:
                await self._apply([], [])
                await self.out.flush()

    def _hold_unknown(
        self, events: list[Event], origins: list[Origin]
    ) -> tuple[list[Event], list[Origin], list[Origin]]:
        """Split off interactions on items neither known nor in this batch, within their grace.

        Returns (events to apply now, their origins, origins of previously held events among them).
        """
        now = time.monotonic()
        grace = self.settings.unknown_item_grace_s
        held_before, self._deferred = self._deferred, []
        cand = [(d.event, d.origin, d.deadline, True) for d in held_before]
        cand += [(e, o, now + grace, False) for e, o in zip(events, origins, strict=True)]
        arriving = {e.item_id for e, *_ in cand if isinstance(e, ItemPublished)}
        ready: list[Event] = []
        ready_origins: list[Origin] = []
        released: list[Origin] = []
        for ev, origin, deadline, was_held in cand:
            item = getattr(ev, "item_id", None)
            waiting = (
                grace > 0
                and isinstance(ev, Click | Like | Comment)
                and item not in arriving
                and not self.engine.knows_item(item)
                and now < deadline
            )
            if waiting:
                if not was_held and origin.event is not None:
                    origin.event.message.incref()  # the stream's own ack no longer commits it
                self._deferred.append(Deferred(ev, origin, deadline))
                continue
            ready.append(ev)
            ready_origins.append(origin)
            if was_held:
                released.append(origin)
        return ready, ready_origins, released

    async def _apply(self, events: list[Event], origins: list[Origin]) -> None:
        events, origins, released = self._hold_unknown(events, origins)
        if events:
            await self._learn_and_publish(events, origins)
        if self._ack is not None:
            for origin in released:
                if origin.event is not None:
                    await self._ack(origin.event)

    async def _learn_and_publish(self, events: list[Event], origins: list[Origin]) -> None:
        # Items first (stable): a batch that carries an item and a click on it, read from two
        # partitions in either order, then knows the item. Per-key order within a topic is kept.
        order = sorted(range(len(events)), key=lambda i: not isinstance(events[i], ItemPublished))
        events = [events[i] for i in order]
        origins = [origins[i] for i in order]
        result = await self._call(self.engine.learn_many, events)
        for index, reason, detail in result.rejected:
            await self.dead_letters.send(origins[index], reason, detail)
        apply_updates(self.tables, result.table_updates)

        ts_of = {ev.event_id: ev.ts for ev in events}
        payloads: list[dict[str, Any]] = []
        if result.touched_users:
            # The event that made each user's list change (their own, or a followee's for social proof).
            sources: Mapping[str, str] | None = getattr(result, "source_event_ids", None)
            if not sources:
                sources = {ev.user_id: ev.event_id for ev in events if hasattr(ev, "user_id")}
            payloads += await self._call(
                self.engine.recommend_many,
                result.touched_users,
                source_event_ids={u: sources[u] for u in result.touched_users if u in sources},
                # who-to-follow only where the user's follows/profile moved (cheaper than everyone)
                who_to_follow=getattr(result, "who_to_follow_users", True),
            )
        if result.queries:
            payloads += await self._call(self.engine.answer_queries, result.queries)
        await self.publish(payloads, ts_of)

    async def publish(self, payloads: list[dict[str, Any]], ts_of: Mapping[str, float]) -> None:
        if not payloads:
            return
        with metrics.stage("publish"):
            for p in payloads:
                await self.out.send(self.rec_topic, str(p["user_id"]), orjson.dumps(p))
        now = time.time()
        for p in payloads:
            kind = p.get("kind", "items")
            metrics.RECOMMENDATIONS.labels(kind=kind).inc()
            src_ts = ts_of.get(p.get("source_event_id") or "")
            if src_ts is None:
                continue
            if kind == "query":
                metrics.QUERY_LATENCY.observe(max(0.0, now - src_ts))
            elif kind == "items":
                metrics.E2E_LATENCY.observe(max(0.0, now - src_ts))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class Passthrough:
    """The bench baseline: decode and validate each record, re-publish it as JSON (no engine)."""

    def __init__(self, settings: Settings, topics: Topics, out: OutputProducer) -> None:
        self.settings = settings
        self.topics = topics
        self.out = out
        self.topic = topic_name(settings, PASSTHROUGH)
        self.dead_letters = DeadLetters(out, settings)

    async def handle(self, batch: Sequence[faust.types.EventT]) -> None:
        from socrec_online.events import to_dict

        with metrics.stage("decode"):
            events, origins, bad = decode_batch(batch, self.settings)
        for origin, exc in bad:
            metrics.EVENTS.labels(topic=origin.topic, outcome="dead_letter").inc()
            await self.dead_letters.send(origin, exc.reason, exc.detail)
        now = time.time()
        with metrics.stage("publish"):
            for ev, origin in zip(events, origins, strict=True):
                await self.out.send(self.topic, key_of(ev), orjson.dumps(to_dict(ev)))
                metrics.EVENTS.labels(topic=origin.topic, outcome="ok").inc()
                metrics.E2E_LATENCY.observe(max(0.0, now - ev.ts))
            await self.out.flush()
        metrics.mark_batch()


def register_agent(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    handler: Callable[[Sequence[Any]], Awaitable[None]],
    name: str,
) -> Any:
    """One agent over every input topic, feeding micro-batches to ``handler``."""

    async def process(stream: faust.StreamT) -> None:
        bind = getattr(getattr(handler, "__self__", None), "bind_acks", None)
        if bind is not None:
            bind(stream.ack)
        async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_max_seconds):
            try:
                await handler(batch)
            except Exception as exc:
                metrics.AGENT_ERRORS.labels(agent=name).inc()
                log.error("agent %s failed; crashing the worker so it restarts and replays: %r", name, exc)
                raise

    process.__name__ = name
    process.__qualname__ = name
    return app.agent(
        topics.inputs,
        name=name,
        concurrency=1,
        supervisor_strategy=CrashingSupervisor,
    )(process)

"""The service path of one micro-batch: decode -> engine -> tables -> recommendations.

Engine calls run on one dedicated thread, so the event loop keeps fetching, heartbeating and
producing meanwhile; the thread is single, so engine calls never overlap. By default the engine
itself lives in a child process (``socrec_online.service.remote``) and that thread only waits on
its pipe. Two batches are in flight: batch N's outputs are written while the engine learns N+1.

Inputs arrive on several topics and partitions, so a click can overtake the ``items`` event it
refers to. Such an interaction is held (its ack too, so its offset is not committed and a crash
loses nothing) until its item arrives or ``unknown_item_grace_s`` runs out, longer while the item
may still be on its way (``streams.items_behind``); only then is it dead-lettered as ``unknown_item``.

Retention: a batch's table updates may carry deletions (None: keys the engine's retention sweep
evicted); they are written like any value, in the same batch, fences and acks, as tombstones, but
only for keys this worker owns: another worker's key is deleted by its owner, never from a copy.

Failure policy: a bad record is a dead letter (with its origin); an engine failure on a batch is
retried and, if it persists, narrowed down to the events that fail alone, which are dead-lettered
(``streams.breaker``); any other exception propagates, and the agent crashes the worker
(``streams.agents``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust

from socrec_online import metrics
from socrec_online.api.reads import NotReady
from socrec_online.events import Click, Comment, Event, ItemPublished, Like, key_of
from socrec_online.health import set_os_thread_name
from socrec_online.partitioning import owner_partition
from socrec_online.service.decode import DeadLetterReason
from socrec_online.service.heap import freeze_long_lived
from socrec_online.service.protocols import WorkerEngine
from socrec_online.service.remote import Encoded, RemoteEngine
from socrec_online.service.state import Position
from socrec_online.settings import Settings
from streams.breaker import Breaker, Item
from streams.decoding import DeadLetters, decode_batch
from streams.origin import Origin
from streams.output import OutputProducer, acknowledged
from streams.rereads import HandledMarks
from streams.routing import Router
from streams.tables import apply_updates, fence, settle, snapshot_tables
from streams.topics import RECOMMENDATIONS, Topics, topic_name

log = logging.getLogger("socrec.streams")
T = TypeVar("T")


class Deferred:
    """An interaction waiting for its item's event since ``since`` (monotonic); its ack is held."""

    __slots__ = ("event", "origin", "since")

    def __init__(self, event: Event, origin: Origin, since: float) -> None:
        self.event, self.origin, self.since = event, origin, since


class _Outputs:
    """What one batch must still write once the engine is done with it."""

    __slots__ = ("events", "failed", "origins", "released", "result")

    def __init__(self, events: list[Event], origins: list[Origin], released: list[Origin]) -> None:
        self.events, self.origins, self.released = events, origins, released
        self.result: dict[str, Any] | None = None
        self.failed: list[tuple[int, str]] = []  # (index, error) of events the breaker gave up on


class Pipeline:
    """The full service path of one micro-batch: decode -> engine -> tables -> recommendations."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        tables: Mapping[str, faust.Table],
        engine: WorkerEngine,
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
        self.router = Router(settings, out)  # records on another id's partition go there, unapplied
        self.marks = HandledMarks()  # a record the consumer hands over again is not handled twice
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="socrec-engine",
            initializer=set_os_thread_name,  # visible to top -H / py-spy / the liveness test
            initargs=("socrec-engine",),
        )
        self._restore_pending = True
        self._on_ready = on_ready
        self._lock = asyncio.Lock()  # one batch at a time: engine calls and table writes stay in order
        self._deferred: list[Deferred] = []
        self._ack: Callable[[faust.types.EventT], Awaitable[Any]] | None = None
        self.batches = 0
        self.restores = 0
        self._fences = 0
        self._tail: asyncio.Future[None] | None = None  # the previous batch's outputs, in flight
        self.breaker = Breaker(settings.breaker_failures, self._step, self._rebuild)
        self.shared: Any | None = None  # streams.mirror.StateMirror: the other workers' state
        # may the item of a click held since then still arrive? (streams.items_behind)
        self.items_behind: Callable[[str, float], bool] = lambda _item, _since: False
        # told of every payload published (the read API's cache of latest lists, streams/api.py)
        self.on_publish: Callable[[Sequence[Encoded]], None] | None = None
        # the input partitions this worker owns now: deletions are written for their keys only
        self.owned_partitions: Callable[[], set[int]] = lambda: set(range(settings.partitions))

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def between_batches(self, fn: Callable[..., T], *args: Any, before_restore: bool = False) -> T:
        """One engine call between two batches, never in the middle of one (the read API's, a model
        swap's: no batch sees half a swap). Raises ``NotReady`` before the engine is first restored
        from the tables, unless ``before_restore``: a hot swap may be staged on the empty engine (the
        restore marks its build stale, and it is built again on the restored graph)."""
        async with self._lock:
            if self._restore_pending and not before_restore:
                raise NotReady("the engine is not restored from the tables yet")
            return await self._call(fn, *args)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
        """Between two batches for the whole block, the last batch's outputs written: no batch and no
        other between-batch call runs until it ends (a state dump, a rewrite of the tables). Yields
        the block's way to call the engine (on its thread: ``between_batches`` would wait on the
        block itself)."""
        async with self._lock:
            await self.quiesce()
            yield self._call

    async def restore(self) -> None:
        async with self._lock:
            await self._restore()

    async def _restore(self) -> None:
        # After a recovery Faust seeks every assigned partition back to its committed offset, so
        # events held for their items are delivered again: forget them here (and let them in again).
        self.marks.forget(
            (d.origin.event.message.topic, d.origin.partition, d.origin.offset)
            for d in self._deferred
            if d.origin.event is not None
        )
        self._deferred.clear()
        t0 = time.perf_counter()
        state = await self._rebuild({})
        if isinstance(self.engine, RemoteEngine):
            freeze_long_lived()  # this process's side too (an in-process engine's restore did it)
        self._restore_pending = False
        sizes = {k: len(v) for k, v in state.items()}
        log.info("engine restored from tables %s in %.2fs", sizes, time.perf_counter() - t0)
        if self._on_ready is not None:
            self._on_ready()
            self._on_ready = None

    async def _step(self, items: list[Item]) -> dict[str, Any]:
        events = [ev for ev, _ in items]
        positions = [pos for _, pos in items]
        result: dict[str, Any] = await self._call(self.engine.step, events, positions=positions)
        return result

    async def _rebuild(self, overlay: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The engine from the tables (plus ``overlay``: values not written yet, for the breaker,
        whose failed call may have left the engine half-applied); returns the state it was given.
        Held events stay held (never applied)."""
        await self.quiesce()
        state = snapshot_tables(self.tables)
        for name in overlay:
            state.setdefault(name, {})
        apply_updates(state, overlay)
        if self.shared is not None:
            state = await self.shared.rebuild_state(state)
        await self._call(self.engine.restore, state)
        self.restores += 1
        return state

    async def upsert(self, take: Callable[[], dict[str, dict[str, Any]]]) -> int:
        """Apply other workers' table values (``take()``, chosen under the lock) between batches;
        0 without calling ``take`` until the engine is rebuilt (the rebuild merges them instead)."""
        async with self._lock:
            if self._restore_pending:
                return 0
            values = take()
            n = sum(len(kv) for kv in values.values())
            if n:
                await self._call(self.engine.upsert, values)
            return n

    def bind_acks(self, ack: Callable[[faust.types.EventT], Awaitable[Any]]) -> None:
        """The stream's ack: used to release events whose acks were held while deferred."""
        self._ack = ack

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    async def handle(self, batch: Sequence[faust.types.EventT]) -> None:
        """Learn and score this batch, then hand its outputs to ``_finish`` and return.

        Two batches overlap: while the engine works on batch N+1, batch N's tables, fences and
        recommendations are written and flushed. The acks of N's records are held until then
        (``incref``), so no offset is committed before what the batch caused is delivered.
        """
        async with self._lock:
            if self._restore_pending:
                await self._restore()
            metrics.BATCH_EVENTS.observe(len(batch))
            with metrics.stage("decode"):
                events, origins, bad = decode_batch(self.marks.fresh(batch), self.settings)
            for origin, exc in bad:
                metrics.EVENTS.labels(topic=origin.topic, outcome="dead_letter").inc()
                await self.dead_letters.send(origin, exc.reason, exc.detail)
            # flushed by ``_finish`` before any ack of this batch (streams/routing.py)
            events, origins = await self.router.divert(events, origins)
            held = [fe for fe in batch if self._ack is not None]
            for fe in held:
                fe.message.incref()
            work = await self._apply(events, origins)
            await self._chain(work, held)

    async def _chain(self, work: _Outputs, held: list[faust.types.EventT]) -> None:
        """At most one batch's outputs in flight: wait for the previous one, start this one."""
        await self.quiesce()
        self._tail = asyncio.ensure_future(self._finish(work, held))

    async def quiesce(self) -> None:
        """Wait until every batch's outputs are written and acknowledged (raises what they raised)."""
        tail, self._tail = self._tail, None
        if tail is not None:
            await tail

    def raise_failed(self) -> None:
        """Timer: a batch's outputs failed while no next batch came to notice it; crash now."""
        tail = self._tail
        if tail is not None and tail.done() and not tail.cancelled() and tail.exception() is not None:
            self._tail = None
            raise tail.exception()  # type: ignore[misc]

    async def retry_deferred(self) -> None:
        """Timer: release held interactions whose item arrived, or whose grace ran out."""
        self.raise_failed()
        if self._deferred and not self._lock.locked():
            async with self._lock:
                work = await self._apply([], [])
                await self._chain(work, [])

    def _hold_unknown(
        self, events: list[Event], origins: list[Origin]
    ) -> tuple[list[Event], list[Origin], list[Origin]]:
        """Split off interactions on items neither known nor in this batch, within their grace.

        Returns (events to apply now, their origins, origins of previously held events among them).
        """
        now = time.monotonic()
        grace = self.settings.unknown_item_grace_s
        longest = self.settings.unknown_item_max_wait_s - grace  # past the deadline, while behind
        held_before, self._deferred = self._deferred, []
        cand = [(d.event, d.origin, d.since, True) for d in held_before]
        cand += [(e, o, now, False) for e, o in zip(events, origins, strict=True)]
        arriving = {e.item_id for e, *_ in cand if isinstance(e, ItemPublished)}
        ready: list[Event] = []
        ready_origins: list[Origin] = []
        released: list[Origin] = []
        for ev, origin, since, was_held in cand:
            item = ev.item_id if isinstance(ev, Click | Like | Comment) else None  # only these wait
            deadline = since + grace
            waiting = (
                grace > 0
                and item is not None
                and item not in arriving
                and not self.engine.knows_item(item)
                and (now < deadline or (now < deadline + longest and self.items_behind(item, since)))
            )
            if waiting:
                if not was_held and origin.event is not None:
                    origin.event.message.incref()  # the stream's own ack no longer commits it
                self._deferred.append(Deferred(ev, origin, since))
                continue
            ready.append(ev)
            ready_origins.append(origin)
            if was_held:
                released.append(origin)
        return ready, ready_origins, released

    def _positions(self, events: list[Event], origins: list[Origin]) -> list[Position | None]:
        """Where each event was read, with the offsets of its key's events held below it on that
        partition (``socrec_online.service.state.replayed``: what makes a replay exact)."""
        held: dict[tuple[str, int, str], list[int]] = {}
        for d in self._deferred:
            o = d.origin
            held.setdefault((o.topic, o.partition, key_of(d.event)), []).append(o.offset)
        out: list[Position | None] = []
        for ev, o in zip(events, origins, strict=True):
            below = held.get((o.topic, o.partition, key_of(ev)), ())
            out.append((f"{o.topic}/{o.partition}", o.offset, tuple(h for h in below if h < o.offset)))
        return out

    async def _apply(self, events: list[Event], origins: list[Origin]) -> _Outputs:
        events, origins, released = self._hold_unknown(events, origins)
        work = _Outputs(events, origins, released)
        if events:
            # Items first (stable): a batch that carries an item and a click on it, read from two
            # partitions in either order, then knows the item. Per-key order within a topic is kept.
            order = sorted(range(len(events)), key=lambda i: not isinstance(events[i], ItemPublished))
            work.events = [events[i] for i in order]
            work.origins = [origins[i] for i in order]
            # One call per batch: learn, score the touched users, answer the queries (the engine
            # may live in another process, so this is one round trip).
            # Positions make a replay exact on offsets (state.replayed; per partition the agent is
            # handed records in offset order from the commit: streams/delivery.py); where offsets can
            # name other records later (a broker that loses its logs), applied event ids decide.
            exact = self.settings.broker_caps.exact_replay
            at = self._positions(work.events, work.origins) if exact else [None] * len(work.events)
            items: list[Item] = list(zip(work.events, at, strict=True))
            work.result, work.failed = await self.breaker.run(items)
        return work

    async def _finish(self, work: _Outputs, held: list[faust.types.EventT]) -> None:
        """A batch's outputs: recommendations, dead letters, tables (+ fences); flushed; then its
        records' acks. Recommendations go first: the fence waits for the broker to acknowledge the
        changelog records, and the table writes and that wait took 20 ms at p50 (45 ms at p95) of
        each batch at 500 events/s, added to every recommendation's latency when they came first.
        The order does not matter for recovery: nothing of the batch is committed before all of it
        is acknowledged, and a replay publishes the same lists again."""
        result = work.result
        if result is not None:
            ts_of = {ev.event_id: ev.ts for ev in work.events}
            # An engine in this process returns dicts, the engine process returns them encoded.
            payloads = [p if isinstance(p, Encoded) else Encoded.of(p) for p in result["payloads"]]
            await self.publish(payloads, ts_of)
            for index, reason, detail in result["rejected"]:
                await self.dead_letters.send(work.origins[index], reason, detail)
            for index, error in work.failed:
                metrics.EVENTS.labels(topic=work.origins[index].topic, outcome="dead_letter").inc()
                await self.dead_letters.send(work.origins[index], DeadLetterReason.processing_failed, error)
            updates = self.writable(result["table_updates"])
            apply_updates(self.tables, updates)
            if self.settings.broker_caps.needs_changelog_fences:
                self._fences += 1
                written = [name for name, kv in updates.items() if kv]
                await fence(self.tables, written, self.settings.partitions, self._fences)
        limit = self.settings.output_ack_timeout_s
        await acknowledged(self.out.flush(), limit, "a batch's recommendations and dead letters")  # before its commit
        await acknowledged(settle(self.tables, self.settings), limit, "a batch's changelog records")  # and fences
        if self._ack is not None:
            for origin in work.released:
                if origin.event is not None:
                    await self._ack(origin.event)
            for fe in held:
                await self._ack(fe)
        if held or work.events:
            self.batches += 1
            metrics.mark_batch()

    def writable(self, updates: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
        """The updates to write: every value, and the deletions of keys this worker owns (a key of
        another worker's partition, known from its changelog or left behind by a rebalance, is only
        ever deleted by its owner, whose value may be newer than this worker's copy)."""
        if not any(v is None for kv in updates.values() for v in kv.values()):
            return updates
        owned, n = self.owned_partitions(), self.settings.partitions
        return {
            name: {k: v for k, v in kv.items() if v is not None or owner_partition(k, n) in owned}
            for name, kv in updates.items()
        }

    async def publish(self, payloads: list[Encoded], ts_of: Mapping[str, float]) -> None:
        if not payloads:
            return
        with metrics.stage("publish"):
            for p in payloads:
                await self.out.send(self.rec_topic, p.user_id, p.data)
        if self.on_publish is not None:
            self.on_publish(payloads)
        now = time.time()
        for p in payloads:
            kind = p.kind
            metrics.RECOMMENDATIONS.labels(kind=kind).inc()
            src_ts = ts_of.get(p.source_event_id or "")
            if src_ts is None:
                continue
            if kind == "query":
                metrics.QUERY_LATENCY.observe(max(0.0, now - src_ts))
            elif kind == "items":
                metrics.E2E_LATENCY.observe(max(0.0, now - src_ts))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()  # the engine process, when there is one

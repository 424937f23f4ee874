"""``socrec worker``: provision topics, load the engine, run the Faust worker, serve metrics.

Start-up order matters: topics are checked/created first (a misfit is a clear error, not a
silent mis-partitioned run); the engine loads its models before joining the consumer group
(so a slow model load never triggers a rebalance); the engine is rebuilt from the tables
after every table recovery, before the agent sees an event; then the ready file is written
(tests, the demo and the bench wait on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import IllegalStateError

from socrec_online import metrics
from socrec_online.settings import Settings
from streams.admin import TopicMismatchError, ensure_topics
from streams.agents import Passthrough, Pipeline, register_agent
from streams.app import create_app
from streams.delivery import DeliverySensor, RereadHoles, items_behind
from streams.liveness import install_health_route, install_state_route
from streams.offsets_guard import register_offsets_guard
from streams.output import OutputProducer
from streams.tables import declare_tables
from streams.topics import Topics, base_name, declare_topics, required_topics

log = logging.getLogger("socrec.worker")
LAG_INTERVAL_S = 2.0
DEFERRED_RETRY_S = 0.2


class CommitSensor(faust.Sensor):
    """Feeds socrec_last_commit_age_seconds: a worker that stops committing is visibly stuck."""

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        metrics.mark_commit()


class RewindOnJump:
    """Consumer mixin: input records reach the streams in the order the Kafka client fetches them
    after its latest seek, so taking partitions over never skips one (issue #7).

    Why: after a rebalance Faust seeks every partition to its committed offset, but its fetch loop
    runs on (the flow is resumed for changelog recovery), so records fetched before a seek still
    arrive after it, Faust moves a read mark only after a record's delivery (a stale delivery
    overwrites the mark the seek set), and ``flow_control.resume()`` empties the stream queues after
    that seek. Faust then drops the records fetched again as already read, or records the offsets
    below a stale record as a gap (as if compacted away) and counts them acknowledged: a worker that
    took over a killed one's partitions never applied 4-50 of their events, and could commit over
    them (1 run in 3 of tests/integration/test_scale_out.py). Per input record:

    - at or past the client's position: fetched before a seek moved the position back; dropped
      (the client fetches it again);
    - below Faust's read mark: fetched after that seek, so the mark is stale; the mark follows it;
    - past the read mark + 1: the partition is sought back to the mark and the rest of that fetch
      dropped, once per mark (a jump seen again at the same mark is a real hole in the log, e.g.
      transaction markers, and goes through as Faust's gap);

    and once the flow resumes with input partitions active, they are sought to their committed
    offsets again (``resume_flow``). Records read twice are idempotent on event_id.
    """

    input_topics: frozenset[str] = frozenset()
    _read_offset: Any
    _thread: Any
    _active_partitions: Any
    _reseek: asyncio.Future[None] | None = None
    _flow_stops = 0

    def resume_flow(self) -> None:
        """Faust resumes the flow after ``app.flow_control.resume()``, which empties every stream's
        queue: input records fetched after the rebalance's seek to the committed offsets and still
        queued are gone, while the fetch position and the read marks are past them (measured: 43
        records of a taken-over partition, never applied, never acknowledged). With input partitions
        active, they are sought to their committed offsets once more before the flow resumes, so
        those records come again (and nothing is read twice meanwhile)."""
        if not any(tp.topic in self.input_topics for tp in self._active_partitions or ()):
            super().resume_flow()  # type: ignore[misc]
            return
        self._reseek = asyncio.ensure_future(self._seek_inputs_then_resume(self._flow_stops))

    def stop_flow(self) -> None:
        self._flow_stops += 1
        super().stop_flow()  # type: ignore[misc]

    async def _seek_inputs_then_resume(self, stops: int) -> None:
        try:
            await self.perform_seek()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the rebalance goes on; a later one seeks again
            log.warning("could not seek the input partitions to their committed offsets again: %r", exc)
        if self._flow_stops == stops:  # not stopped again meanwhile (a next rebalance)
            super().resume_flow()  # type: ignore[misc]

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
        jumped: dict[Any, int] = self.__dict__.setdefault("_jumped_at", {})
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
                self._read_offset[tp] = offset
            elif (
                mark is not None
                and offset > mark + 1
                and jumped.get(tp) != mark
                and (committed is None or offset > committed)  # else the mark is stale: the record is due
            ):
                back = mark if committed is None else max(mark, committed)
                jumped[tp] = mark
                rewound.add(tp)
                log.info(  # expected around a rebalance
                    "input %s[%d]: record %d after read mark %d: reading again from %d",
                    tp.topic, tp.partition, offset, mark, back,
                )  # fmt: skip
                await self.seek(tp, back)  # type: ignore[attr-defined]
                continue
            yield tp, message


class CommitBelowHeld:
    """Consumer mixin: an input partition's commit never passes a record handed to the stream and
    not yet acknowledged (issue #6).

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

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if tp.topic in self.input_topics and getattr(self, "has_hole", lambda _tp: False)(tp):
            return None  # records below ``acked`` were dropped before the agent: read again first
        if acked and tp.topic in self.input_topics:
            lowest = min(acked)
            for interval in self._gap[tp]:  # offsets Faust saw no record for count as done
                lowest = min(lowest, interval.begin)
            floor = self._committed_offset[tp] or 0  # records below the commit are done already
            if any(
                floor <= m.offset < lowest and not m.acked for m in list(self._unacked_messages) if m.tp == tp
            ):
                return None  # a held record lies below the acknowledged run: wait for it
        return super()._new_offset(tp)  # type: ignore[misc, no-any-return]


def _harden_consumer(app: faust.App, input_topics: Any) -> None:
    """Make the app's consumer a :class:`RewindOnJump`, :class:`~streams.delivery.RereadHoles` and
    :class:`CommitBelowHeld` (before anything creates it), and tell it what the agent is handed."""
    if app._consumer is not None:
        raise RuntimeError("the consumer exists already: its class can no longer be set")
    base = app.transport.Consumer
    if not issubclass(base, RewindOnJump):
        app.transport.Consumer = type(  # type: ignore[misc]
            f"Hardened{base.__name__}",
            (CommitBelowHeld, RereadHoles, RewindOnJump, base),
            {"input_topics": frozenset(input_topics)},
        )
    app.sensors.add(DeliverySensor(lambda: app._consumer))


def _write_ready(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def build(
    settings: Settings,
    *,
    passthrough: bool = False,
    engine: Any | None = None,
    ready_file: Path | None = None,
    metrics_port: int | None = None,
) -> tuple[faust.App, Topics, Pipeline | Passthrough]:
    """The Faust app with its topics, tables and agent, ready for ``faust.Worker``."""
    app = create_app(settings, app_id=f"{settings.app_id}-passthrough" if passthrough else None)
    topics = declare_topics(app, settings)
    _harden_consumer(app, topics.inputs.topics)
    app.sensors.add(CommitSensor())

    def ready() -> None:
        if ready_file is not None:
            _write_ready(
                ready_file,
                {
                    "pid": os.getpid(),
                    "metrics_port": metrics_port,
                    "web_port": settings.web_port,
                    "ts": time.time(),
                },
            )
        log.info("worker ready (metrics on http://%s:%s/metrics)", settings.metrics_host, metrics_port)

    out = OutputProducer(settings)

    handler: Pipeline | Passthrough

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _stop_output(sender: Any, **kwargs: Any) -> None:
        if isinstance(handler, Pipeline):
            # the last batch's outputs: written and acked now, so their offsets can be committed
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handler.quiesce(), timeout=10.0)
        await out.stop()

    if passthrough:
        handler = Passthrough(settings, topics, out)

        @app.on_rebalance_complete.connect  # type: ignore[arg-type]
        async def _pt_ready(sender: Any, **kwargs: Any) -> None:
            ready()

    else:
        if engine is None:
            from socrec_online.service.engine import Engine, set_service_torch_threads

            set_service_torch_threads(settings)

            if settings.engine_process:
                from socrec_online.service.remote import RemoteEngine

                engine = RemoteEngine(settings)
            else:
                engine = Engine.from_settings(settings)
        tables = declare_tables(app, settings, type(engine).TABLES)
        pipeline = Pipeline(settings, topics, tables, engine, out, on_ready=ready)
        pipeline.items_behind = items_behind(app, settings)
        handler = pipeline
        from streams.model_updates import register_model_updates

        register_model_updates(app, settings, pipeline)  # hot swap on model-updates (every worker)
        if settings.shared_state:
            from streams.mirror import register_mirror

            register_mirror(app, settings, tables, pipeline)  # the other workers' partitions
        if settings.debug_state_route:
            install_state_route(app, pipeline)
        recovered = {"n": 0}

        async def on_recovered() -> None:
            # Called once per table per recovery round; rebuild once every table is back.
            recovered["n"] += 1
            if recovered["n"] % len(tables) == 0:
                await pipeline.restore()

        for table in tables.values():
            table.on_recover(on_recovered)

        @app.timer(DEFERRED_RETRY_S)
        async def _retry_deferred() -> None:
            await pipeline.retry_deferred()

        metrics.set_model_version(str(getattr(engine, "model_version", "zero-shot")))

    register_agent(app, settings, topics, handler.handle, "passthrough" if passthrough else "process")
    # a broker that lost its data: resume input partitions whose log went backwards (streams/offsets_guard.py)
    register_offsets_guard(app, settings, topics.inputs.topics, handler if isinstance(handler, Pipeline) else None)

    @app.timer(LAG_INTERVAL_S)
    async def _consumer_lag() -> None:
        consumer = app.consumer
        lag: dict[str, int] = {}
        in_flight: dict[str, int] = {}
        read = getattr(consumer, "_read_offset", {})
        committed = getattr(consumer, "_committed_offset", {})
        for tp in consumer.assignment():
            hw = None
            if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
                continue
            with contextlib.suppress(IllegalStateError, KeyError):
                hw = consumer.highwater(tp)
            if hw is None:
                continue
            pos = read.get(tp)
            behind = hw - (pos + 1) if pos is not None else hw
            name = base_name(settings, tp.topic)
            lag[name] = lag.get(name, 0) + max(0, int(behind))
            # read but not committed: events in the take buffer or a batch (health.py: a stuck
            # agent with everything already fetched shows lag 0 but in-flight > 0)
            done = committed.get(tp) or 0
            in_flight[name] = in_flight.get(name, 0) + (max(0, pos + 1 - done) if pos is not None else 0)
        for name, value in lag.items():
            metrics.CONSUMER_LAG.labels(topic=name).set(value)
        for name, value in in_flight.items():
            metrics.CONSUMER_IN_FLIGHT.labels(topic=name).set(value)
        metrics.mark("lag")  # health.py: a lag reading that stops refreshing means a blocked loop

    return app, topics, handler


def run_worker(
    settings: Settings,
    *,
    passthrough: bool = False,
    ready_file: Path | None = None,
    loglevel: str = "WARNING",
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (2 = topics do not fit)."""
    logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    wanted = required_topics(settings, passthrough=passthrough)
    try:
        loop.run_until_complete(ensure_topics(settings, wanted))
    except TopicMismatchError as exc:
        print(f"socrec worker: {exc}", file=sys.stderr)
        return 2
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    port = metrics.start_metrics_server(settings.metrics_host, settings.metrics_port)
    print(f"socrec worker: metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)
    install_health_route(settings)  # GET /healthz: 200 ok, 503 stuck (socrec_online/health.py)
    app, _topics, handler = build(settings, passthrough=passthrough, ready_file=ready_file, metrics_port=port)
    worker = faust.Worker(app, loop=loop, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner sets the ROOT logger to DEBUG (so it can spin on every record):
    # every aiokafka/faust debug line then builds a LogRecord, ~7 % of the worker's CPU (py-spy).
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    finally:
        if isinstance(handler, Pipeline):
            handler.close()
        metrics.stop_metrics_server()
    return code

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
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import IllegalStateError, KafkaError

import socrec_online
from socrec_online import metrics, ops_http
from socrec_online.api.auth import api_token
from socrec_online.broker import free_port
from socrec_online.health import Readiness
from socrec_online.logs import CounterDeltas, configure_logging, describe_assignment, logging_config
from socrec_online.service.protocols import WorkerEngine
from socrec_online.service.remote import STOP_TIMEOUT_S as ENGINE_STOP_TIMEOUT_S
from socrec_online.settings import Settings
from streams.admin import TopicMismatchError, ensure_topics
from streams.agents import register_agent
from streams.api import api_server
from streams.app import create_app
from streams.catchup import CatchUp
from streams.delivery import harden_consumer
from streams.items_behind import items_behind
from streams.liveness import install_health_route, install_ready_route, install_state_route
from streams.offsets_guard import register_offsets_guard
from streams.output import OutputProducer
from streams.passthrough import Passthrough
from streams.pipeline import Pipeline
from streams.recovery_guard import register_recovery_guard
from streams.tables import declare_tables
from streams.topics import Topics, base_name, declare_topics, required_topics

log = logging.getLogger("socrec.worker")
LAG_INTERVAL_S = 2.0
DEFERRED_RETRY_S = 0.2
DEAD_LETTER_LOG_INTERVAL_S = 10.0
"""Dead letters are logged as one count per reason per interval, not a line per refused record."""
QUIESCE_TIMEOUT_S = 10.0
"""At SIGTERM, the longest the worker waits for the last batch's outputs to be acknowledged."""
SHUTDOWN_GRACE_S = QUIESCE_TIMEOUT_S + 2 * ENGINE_STOP_TIMEOUT_S + 30.0
"""How long a supervisor must wait after SIGTERM before it kills a worker (compose's
stop_grace_period is at least this; tests/ops check it). The bounded steps of a drain: the last
batch's outputs (QUIESCE_TIMEOUT_S), the engine process's exit (up to twice its stop timeout),
plus a margin for the output flush and Faust's final commit and group leave, which the Kafka
client bounds with its request timeout. Killed sooner, the worker replays from its last commit:
nothing is lost, but the work since that commit is done again."""


class CommitSensor(faust.Sensor):
    """Feeds socrec_last_commit_age_seconds: a worker that stops committing is visibly stuck."""

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        metrics.mark_commit()


def _write_ready(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def build(
    settings: Settings,
    *,
    passthrough: bool = False,
    engine: WorkerEngine | None = None,
    ready_file: Path | None = None,
    metrics_port: int | None = None,
    readiness: Readiness | None = None,
) -> tuple[faust.App, Topics, Pipeline | Passthrough]:
    """The Faust app with its topics, tables and agent, ready for ``faust.Worker``; ``readiness``
    (``GET /readyz``, the read API) is set once the engine is restored from the tables."""
    app = create_app(settings, app_id=f"{settings.app_id}-passthrough" if passthrough else None)
    topics = declare_topics(app, settings)
    harden_consumer(app, topics.inputs.topics)
    app.sensors.add(CommitSensor())

    def ready() -> None:
        if readiness is not None:
            readiness.set()
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
                await asyncio.wait_for(handler.quiesce(), timeout=QUIESCE_TIMEOUT_S)
        await out.stop()

    if passthrough:
        handler = Passthrough(settings, topics, out)

        @app.on_rebalance_complete.connect  # type: ignore[arg-type]
        async def _pt_ready(sender: Any, **kwargs: Any) -> None:
            ready()

    else:
        if engine is None:
            from socrec_online.devices import set_service_torch_threads
            from socrec_online.service.engine import Engine

            set_service_torch_threads(settings)

            if settings.engine_process:
                from socrec_online.service.remote import RemoteEngine

                engine = RemoteEngine(settings)
            else:
                engine = Engine.from_settings(settings)
        tables = declare_tables(app, settings, type(engine).TABLES)
        pipeline = Pipeline(settings, topics, tables, engine, out, on_ready=ready)
        pipeline.owned_partitions = lambda: {
            tp.partition for tp in app.consumer.assignment() if tp.topic in topics.inputs.topics
        }
        handler = pipeline
        from streams.model_updates import register_model_updates

        register_model_updates(app, settings, pipeline)  # hot swap on model-updates (every worker)
        remote = None
        if settings.shared_state:
            from streams.mirror import register_mirror
            from streams.remote_items import register_remote_items

            mirror = register_mirror(app, settings, tables, pipeline)  # the other workers' partitions
            remote = register_remote_items(app, settings, mirror)  # are their items on their way?
        pipeline.items_behind = items_behind(app, settings, remote)
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

        serving = str(getattr(engine, "model_version", "zero-shot"))
        metrics.set_model_version(serving)
        log.info("serving model %s", serving)

    if isinstance(handler, Pipeline):
        catchup = CatchUp(settings, lambda tp: app.consumer.highwater(tp)) if settings.batch_catchup_backlog > 0 else None
        register_agent(app, settings, topics, handler.handle, "process", catchup=catchup, bind_acks=handler.bind_acks)
    else:
        register_agent(app, settings, topics, handler.handle, "passthrough")
    # a broker that lost its data: resume input partitions whose log went backwards (streams/offsets_guard.py)
    register_offsets_guard(app, settings, topics.inputs.topics, handler if isinstance(handler, Pipeline) else None)
    # a changelog partition whose recovery stopped short of its end is read again (streams/recovery_guard.py)
    register_recovery_guard(app)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _log_assignment(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        mine = [(base_name(settings, tp.topic), tp.partition) for tp in assigned or () if tp.topic in topics.inputs.topics]
        if isinstance(handler, Pipeline):
            handler.marks.retain(assigned or ())
        log.info("input partitions assigned: %s", describe_assignment(mine))

    dead_letters = CounterDeltas(metrics.DEAD_LETTERS, "reason")

    @app.timer(DEAD_LETTER_LOG_INTERVAL_S)
    async def _log_dead_letters() -> None:
        gained = dead_letters.take()
        if gained:
            log.info(
                "dead-lettered %d records in the last %.0f s: %s",
                sum(gained.values()),
                DEAD_LETTER_LOG_INTERVAL_S,
                ", ".join(f"{reason}={n}" for reason, n in gained.items()),
            )

    @app.timer(LAG_INTERVAL_S)
    async def _consumer_lag() -> None:
        consumer = app.consumer
        lag: dict[str, int] = {}
        in_flight: dict[str, int] = {}
        assigned = dict.fromkeys((base_name(settings, t) for t in topics.inputs.topics), 0)
        read = getattr(consumer, "_read_offset", {})
        committed = getattr(consumer, "_committed_offset", {})
        for tp in consumer.assignment():
            if tp.topic in topics.inputs.topics:
                assigned[base_name(settings, tp.topic)] += 1
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
        for name, value in assigned.items():
            metrics.ASSIGNED_PARTITIONS.labels(topic=name).set(value)
        metrics.mark("lag")  # health.py: a lag reading that stops refreshing means a blocked loop

    return app, topics, handler


def run_worker(
    settings: Settings,
    *,
    passthrough: bool = False,
    ready_file: Path | None = None,
    loglevel: str | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (2 = topics do not fit, 3 = Kafka unusable,
    4 = the read API cannot listen on SOCREC_WEB_HOST:SOCREC_WEB_PORT).

    ``loglevel`` overrides ``SOCREC_LOG_LEVEL``; the format is ``SOCREC_LOG_FORMAT``.
    """
    level = (loglevel or settings.log_level).upper()
    configure_logging(level, settings.log_format)
    log.info(
        "socrec-online %s worker starting: group %s, brokers %s, topic prefix %r%s",
        socrec_online.__version__,
        f"{settings.app_id}-passthrough" if passthrough else settings.app_id,
        settings.kafka_bootstrap,
        settings.topic_prefix,
        " (pass-through)" if passthrough else "",
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    wanted = required_topics(settings, passthrough=passthrough)
    try:
        loop.run_until_complete(ensure_topics(settings, wanted))
    except TopicMismatchError as exc:
        print(f"socrec worker: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:  # unreachable, refused TLS, bad credentials: an infrastructure error
        cause = f" ({exc.__cause__!r})" if exc.__cause__ else ""
        print(f"socrec worker: cannot use Kafka at {settings.kafka_bootstrap}: {exc!r}{cause}", file=sys.stderr)
        return 3
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    port = ops_http.start_metrics_server(settings.metrics_host, settings.metrics_port)
    print(f"socrec worker: metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)
    install_health_route(settings)  # GET /healthz: 200 ok, 503 stuck (socrec_online/health.py)
    readiness = install_ready_route()  # GET /readyz: 503 until the engine is restored, then 200
    serve_api = api_token(settings) is not None and not passthrough
    if serve_api and settings.web_port == 0:  # the ready file tells the port
        settings = settings.model_copy(update={"web_port": free_port(settings.web_host)})
    app, _topics, handler = build(
        settings, passthrough=passthrough, ready_file=ready_file, metrics_port=port, readiness=readiness
    )
    api = api_server(settings, handler, readiness) if serve_api and isinstance(handler, Pipeline) else None
    if api is not None and isinstance(handler, Pipeline):
        try:
            loop.run_until_complete(api.start())  # listens before Faust starts: 503 until ready
        except OSError as exc:
            print(f"socrec worker: cannot serve the read API on {settings.web_host}:{settings.web_port}: {exc}",
                  file=sys.stderr)  # fmt: skip
            handler.close()
            ops_http.stop_metrics_server()
            return 4
        print(f"socrec worker: read API on http://{settings.web_host}:{api.port}/v1/ (docs/api.md)", flush=True)

        stop_api = api.stop

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def _stop_api(sender: Any, **kwargs: Any) -> None:
            await stop_api()

    worker = faust.Worker(
        app,
        loop=loop,
        loglevel=level,
        logging_config=logging_config(level, settings.log_format),  # Faust re-applies logging at start
        quiet=True,
        redirect_stdouts=False,
    )
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
        ops_http.stop_metrics_server()
    return code

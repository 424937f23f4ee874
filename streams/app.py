"""Build the one Faust app from the settings (broker, security, web, producer, tables).

Every Faust knob the service depends on is derived here, so a worker, the bench and the
tests cannot disagree. What depends on the broker follows ``settings.broker_caps``
(``socrec_online/broker_caps.py``): on Apache Kafka the session timeout is the configured one
and fetches gather ``kafka_fetch_min_bytes``; on the embedded broker, which holds each JoinGroup
for half the session timeout and each fetch for its whole max wait, both are short.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, credentials_to_aiokafka_auth
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport

from socrec_online import metrics
from socrec_online.broker import free_port
from socrec_online.settings import Settings

EMBEDDED_SESSION_TIMEOUT_S = 6.0  # Tansu holds JoinGroup for session_timeout / 2
PRODUCER_LINGER_S = 0.005
# Tansu holds every fetch this long even when data is waiting, and each fetch costs it more as its
# partitions fill: long enough to spare its CPU, short enough for the latency objective.
EMBEDDED_FETCH_MAX_WAIT_MS = 40


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",") if h.strip()]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS context from SOCREC_KAFKA_SSL_*; None for PLAINTEXT/SASL_PLAINTEXT."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH,
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
    )
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            password=settings.kafka_ssl_password.get_secret_value() if settings.kafka_ssl_password else None,
        )
    return ctx


def credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """faust.auth credentials for SASL/TLS (None = PLAINTEXT). Secrets stay inside the objects."""
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    ctx = ssl_context(settings)
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        ssl_context=ctx,
        mechanism=settings.kafka_sasl_mechanism,
    )


def kafka_client_kwargs(settings: Settings) -> dict[str, Any]:
    """The same security settings for plain aiokafka clients (admin, replay, bench)."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        **credentials_to_aiokafka_auth(credentials(settings)),
    }


WEB_OFF: dict[str, bool] = {
    "web_enabled": False,
    "web_router_enabled": False,
    "web_tables_enabled": False,
    "web_graph_enabled": False,
    "web_stats_enabled": False,
    "web_metrics_enabled": False,
}
"""Faust's web server stays off, and each of its built-in views with it (even under ``--with-web``).

Its views serve without authentication: ``/table/<name>/<key>/`` a user's table state (comment
texts, seen items), ``/router/`` the partition map, the graph and statistics views the worker's
internals. The project serves nothing there: health and metrics are on ``metrics_port``
(``socrec_online.metrics``), and no table is queried over HTTP.
"""


def faust_settings(settings: Settings, *, app_id: str | None = None) -> dict[str, Any]:
    caps = settings.broker_caps
    session_timeout = settings.kafka_session_timeout_s if caps.prompt_join else EMBEDDED_SESSION_TIMEOUT_S
    conf: dict[str, Any] = {
        "broker": broker_urls(settings),
        "broker_credentials": credentials(settings),
        "store": "memory://",
        "datadir": str(settings.data_dir / "faust"),
        "autodiscover": False,
        **WEB_OFF,
        "web_host": settings.web_host,
        "web_port": settings.web_port or free_port(settings.web_host),  # Faust refuses port 0
        "web_bind": settings.web_host,
        "broker_session_timeout": session_timeout,
        "broker_heartbeat_interval": max(0.5, session_timeout / 6),
        "producer_linger": PRODUCER_LINGER_S,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "table_standby_replicas": 0,
        "consumer_auto_offset_reset": "earliest",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "processing_guarantee": "at_least_once",
    }
    return conf


def fetch_kwargs(settings: Settings) -> dict[str, int]:
    """How the worker's consumers of busy topics (its input stream, the shared-state mirror) fetch.

    On Apache Kafka a fetch waits for ``kafka_fetch_min_bytes`` or ``kafka_fetch_max_wait_ms``,
    whichever comes first: with Kafka's default of 1 byte every fetch returns with the first
    record, so at a steady rate the consumers sent one small fetch per producer batch, and the
    broker spent more CPU answering them than the worker spent scoring. The embedded broker
    holds every fetch for its whole max wait, so there the wait is short and the minimum moot.
    """
    if not settings.broker_caps.prompt_fetch:
        return {"fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS, "fetch_min_bytes": 1}
    return {"fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms, "fetch_min_bytes": settings.kafka_fetch_min_bytes}


class _FetchThread(AIOKafkaConsumerThread):
    """Faust hard-codes fetch_max_wait_ms=1500 and leaves fetch_min_bytes at 1: set both from the
    settings (:func:`fetch_kwargs`) before the consumer starts, which is when its fetcher reads them."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        fetch = transport.fetch
        consumer._fetch_max_wait_ms = fetch["fetch_max_wait_ms"]
        consumer._fetch_min_bytes = fetch["fetch_min_bytes"]
        return consumer


class _FetchConsumer(AIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _FetchThread(self, loop=self.loop, beacon=self.beacon)


class _FetchTransport(AIOKafkaTransport):
    """The aiokafka transport whose consumers fetch as :func:`fetch_kwargs` says (the app's own only)."""

    Consumer = _FetchConsumer

    def __init__(self, url: Any, app: Any, fetch: dict[str, int]) -> None:
        super().__init__(url, app)
        self.fetch = fetch


def create_app(settings: Settings, *, app_id: str | None = None) -> faust.App:
    """A Faust app for these settings (``app_id`` overrides the consumer group, e.g. the pass-through)."""
    app = faust.App(app_id or settings.app_id, **faust_settings(settings, app_id=app_id))
    app.transport = _FetchTransport(app.conf.broker_consumer, app, fetch_kwargs(settings))
    return app


async def stream_fetch(app: faust.App) -> dict[str, int]:
    """How ``app``'s stream consumer fetches (``fetch_max_wait_ms``, ``fetch_min_bytes``): the
    aiokafka consumer the worker starts, built the same way (not started: no broker needed) and
    read back. Call it from the event loop; the app's own consumer is left alone (a twin of it is
    built, and closed)."""

    async def no_op(_partitions: Any) -> None:
        return None

    twin: Any = app.transport.create_consumer(
        callback=app.topics.on_message, on_partitions_revoked=no_op, on_partitions_assigned=no_op
    )
    client = twin._thread._create_worker_consumer(app.transport)
    try:
        return {"fetch_max_wait_ms": int(client._fetch_max_wait_ms), "fetch_min_bytes": int(client._fetch_min_bytes)}
    finally:
        await client.stop()
        twin._thread.thread_loop.close()  # never started: nothing else closes the thread's loop


async def restarting(run: Callable[[], Awaitable[None]], log: logging.Logger, what: str, agent: str) -> None:
    """Run a background reader for the worker's life: ``run()`` again 2 s after it fails (a broker
    hiccup must not end it), each failure logged and counted in ``socrec_agent_errors_total``."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting it in 2 s", what)
            metrics.AGENT_ERRORS.labels(agent=agent).inc()
            await asyncio.sleep(2.0)

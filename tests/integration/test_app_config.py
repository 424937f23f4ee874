"""How settings become Faust/aiokafka configuration (no broker needed): security, quirks, loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from socrec_online.settings import Settings


def test_sasl_ssl_settings_reach_faust_and_plain_clients_without_leaking() -> None:
    import faust

    from streams.app import credentials, faust_settings, kafka_client_kwargs

    s = Settings(
        kafka_bootstrap="k1:9093,k2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc-socrec",
        kafka_sasl_password="s3cr3t-pw",  # type: ignore[arg-type]
        embedded_broker=False,
    )
    cred = credentials(s)
    assert isinstance(cred, faust.SASLCredentials)
    assert cred.protocol.value == "SASL_SSL" and cred.mechanism.value == "SCRAM-SHA-512"
    assert cred.username == "svc-socrec" and cred.ssl_context is not None
    assert "s3cr3t-pw" not in repr(cred) and "s3cr3t-pw" not in repr(s)
    kw = kafka_client_kwargs(s)
    assert kw["bootstrap_servers"] == "k1:9093,k2:9093"
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_password"] == "s3cr3t-pw"
    conf = faust_settings(s)
    assert conf["broker"] == ["kafka://k1:9093", "kafka://k2:9093"]
    assert conf["broker_credentials"] is cred or isinstance(conf["broker_credentials"], faust.SASLCredentials)
    assert "producer_max_batch_size" not in conf  # real Kafka: normal batching


def test_plaintext_embedded_defaults_are_loopback_and_work_around_tansu() -> None:
    from streams.app import create_app, credentials, faust_settings

    s = Settings(embedded_broker=True, partitions=5, web_port=0)
    assert credentials(s) is None
    conf = faust_settings(s)
    # changelog records batch normally: recovery is made whole by fences (streams/tables.py)
    assert "producer_max_batch_size" not in conf
    assert conf["broker_session_timeout"] <= 10  # Tansu holds JoinGroup for session_timeout / 2
    assert conf["web_host"] == "127.0.0.1" and conf["web_bind"] == "127.0.0.1"
    assert conf["topic_partitions"] == 5
    app = create_app(s)
    assert app.conf.broker_session_timeout == pytest.approx(conf["broker_session_timeout"])
    assert app.conf.web_bind == "127.0.0.1"
    # Tansu holds fetches for their whole max wait: the worker's consumer must ask for a short one;
    # Apache Kafka answers when the minimum is there, so there a fetch gathers what the settings say
    real_settings = Settings(embedded_broker=False, web_port=0, kafka_fetch_min_bytes=4096, kafka_fetch_max_wait_ms=30)
    embedded, real = asyncio.run(_fetches(app, create_app(real_settings)))
    assert embedded["fetch_max_wait_ms"] <= 100
    assert real == {"fetch_max_wait_ms": 30, "fetch_min_bytes": 4096}


async def _fetches(*apps: Any) -> list[dict[str, int]]:
    from streams.app import stream_fetch

    return [await stream_fetch(app) for app in apps]

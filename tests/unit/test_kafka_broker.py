"""The Apache Kafka node's configuration, without starting it (the integration tests start it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from socrec_online.broker import BrokerError
from socrec_online.kafka_broker import KAFKA_VERSION, ApacheKafkaBroker, ensure_kafka_libs, kafka_home

ROOT = Path(__file__).resolve().parents[2]


def test_the_pinned_version_is_the_poms() -> None:
    pom = (ROOT / "kafka" / "pom.xml").read_text()
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert m and m.group(1) == KAFKA_VERSION
    assert kafka_home() == ROOT / "kafka"


def test_a_single_kraft_node_on_loopback_with_its_data_where_asked(tmp_path: Path) -> None:
    b = ApacheKafkaBroker(port=19999, data_dir=tmp_path / "k")
    conf = b.server_properties()
    assert conf["process.roles"] == "broker,controller"
    assert conf["listeners"].startswith("PLAINTEXT://127.0.0.1:19999,")
    assert conf["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19999"
    assert conf["log.dirs"] == str(tmp_path / "k" / "log")
    assert conf["offsets.topic.replication.factor"] == "1"  # one node: internal topics fit it
    assert "authorizer.class.name" not in conf  # no ACLs without the secure listener
    assert b.bootstrap == "127.0.0.1:19999" and not b.is_running()


def test_missing_jars_without_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pom.xml").write_text("<project/>")
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn on it
    with pytest.raises(BrokerError, match="Maven"):
        ensure_kafka_libs(tmp_path)
    with pytest.raises(BrokerError, match="pom.xml"):
        ensure_kafka_libs(tmp_path / "nowhere")


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage tool reads ``-t -abc...`` as an option: formatting failed about once in 64 starts."""
    import uuid

    from socrec_online import kafka_broker

    ids = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(kafka_broker.uuid, "uuid4", lambda: next(ids))
    cid = kafka_broker.new_cluster_id()
    assert not cid.startswith("-") and len(cid) == 22

"""Kafka section: where the broker is, which kind it is, how topics are made, how to authenticate."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from socrec_online.broker_caps import BrokerCapabilities, BrokerKind, capabilities


class KafkaSettings(BaseModel):
    """The broker, the topics the worker creates, the consumer group and the client's security."""

    kafka_bootstrap: str = Field(
        "127.0.0.1:19092",
        description="Kafka bootstrap servers, comma-separated host:port pairs (host:port[,host:port]).",
    )
    topic_prefix: str = Field(
        "", description="Text put before every topic name (e.g. 'prod.'); empty = the bare names."
    )
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of each topic the worker creates.")
    replication_factor: int = Field(
        1, ge=1, le=7, description="Replicas of each topic the worker creates; at most the number of brokers."
    )
    app_id: str = Field("socrec", description="Faust app id, which is also the consumer group of the workers.")
    broker: BrokerKind = Field(
        "kafka",
        description="Which broker the worker talks to, and which one `socrec broker`, the demo, the benchmarks and "
        "the tests start: 'kafka' = Apache Kafka (a user's cluster, or the project's single KRaft node); "
        "'embedded' = the in-memory Tansu, for machines without Java. On 'embedded' the worker runs the "
        "workarounds for that broker's defects (socrec_online/broker_caps.py); on 'kafka' none of them. "
        "The old SOCREC_EMBEDDED_BROKER=true still selects 'embedded'.",
    )
    embedded_broker: bool | None = Field(
        None, description="Deprecated spelling of SOCREC_BROKER: true = 'embedded'. Leave unset."
    )
    kafka_session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=1800,
        description="Consumer-group session timeout, in seconds: a worker silent this long loses its partitions "
        "to the others, so a killed worker's partitions resume after about this long (6 is Kafka's broker "
        "minimum). The embedded broker always gets 6 (it holds each JoinGroup for half the timeout).",
    )
    kafka_fetch_min_bytes: int = Field(
        16384,
        ge=1,
        le=64 * 1024 * 1024,
        description="Apache Kafka only: a fetch of the worker's input stream and of its shared-state reader waits "
        "until this much data is there (or kafka_fetch_max_wait_ms passes), in bytes. 1 = every fetch returns "
        "with the first record: at a steady rate one fetch per producer batch, which costs the broker more CPU "
        "than the records do.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        25,
        ge=0,
        le=10_000,
        description="Apache Kafka only: the longest a fetch of the worker's input stream and shared-state reader "
        "waits for kafka_fetch_min_bytes, in milliseconds; what a record can wait at a low rate (the embedded "
        "broker always gets 40, it holds every fetch that long).",
    )
    kafka_data_dir: Path = Field(
        Path("./runs/kafka"),
        description="Directory where `socrec broker` keeps the Apache Kafka node's log and configuration (kept "
        "across restarts; delete it to start empty).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol of every client (worker, trainer, admin, console)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism; read only when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name; read only when the protocol is SASL_*.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (a secret: never logged).")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM file) that verifies the brokers; unset = the system's CAs."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM file) for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client key (PEM file) for mutual TLS.")
    kafka_ssl_password: SecretStr | None = Field(
        None, description="Password of the client key (a secret: never logged)."
    )
    offsets_guard_interval_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="Embedded broker only (Apache Kafka keeps its logs): how often, in seconds, the worker "
        "checks that the broker's logs still back its input positions (streams/offsets_guard.py); a partition "
        "whose log went backwards (a restarted in-memory broker) is resumed at its earliest offset and the "
        "tables are re-published. Records produced after such a loss wait up to about one interval. 0 = off.",
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_embedded_flag(cls, data: object) -> object:
        # SOCREC_EMBEDDED_BROKER (bool) came before SOCREC_BROKER; true still means the embedded broker
        if isinstance(data, dict) and data.get("embedded_broker") is not None:
            flag = str(data["embedded_broker"]).strip().lower()
            if flag in ("1", "true", "yes", "on") and "broker" not in data:
                data["broker"] = "embedded"
        return data

    @property
    def broker_caps(self) -> BrokerCapabilities:
        """What the configured broker can do (decides every broker workaround of the stream layer)."""
        return capabilities(self.broker)

"""A single-node Apache Kafka broker (KRaft, on disk) as a managed child process.

The pinned Kafka jars come from Maven Central through ``kafka/pom.xml`` (``make kafka``, or
:func:`ensure_kafka_libs` on first use) into the ignored folder ``kafka/libs``; the broker runs
as ``java -cp 'kafka/libs/*' kafka.Kafka server.properties`` with a combined broker+controller
node. Its storage is formatted on first start (``kafka.tools.StorageTool format``, SCRAM users
added there when asked) and kept on disk, so a restart on the same ``data_dir`` keeps every
acknowledged record. Like :class:`~socrec_online.broker.EmbeddedBroker` it needs no Kafka
client library: readiness is a wire round trip.

Optionally a second, secured listener (``SASL_SSL``, SCRAM-SHA-512 over TLS, ACLs through
Kafka's ``StandardAuthorizer``): :class:`SecureListener`. Then the node talks to itself as a
super user only over authenticated channels: the controller listener is TLS with client
certificates (the broker's own), inter-broker traffic (e.g. transaction markers) goes over
SASL_SSL as the first super user. So the plaintext listener, kept for readiness and for
metadata, authenticates nobody: ``User:ANONYMOUS`` has no ACL there and is refused everything.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from socrec_online.broker import BrokerError, BrokerProcess, check_port_free, free_port
from socrec_online.broker_caps import BrokerKind

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafkaBroker",
    "SecureListener",
    "ensure_kafka_libs",
    "java_command",
    "kafka_home",
]

KAFKA_VERSION = "4.1.1"  # keep equal to kafka/pom.xml's kafka.version
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17
_CLIENT_LISTENER = "PLAINTEXT"
_SECURE_LISTENER = "SASL_SSL"
_CONTROLLER_LISTENER = "CONTROLLER"
_CONTROLLER_PRINCIPAL = "socrec-node"  # who connects to the controller listener, when it is TLS


def kafka_home() -> Path:
    """The folder holding ``pom.xml`` and ``libs/`` (``SOCREC_KAFKA_HOME`` overrides the repository's)."""
    override = os.environ.get("SOCREC_KAFKA_HOME")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "kafka"


def _libs(home: Path) -> Path:
    return home / "libs"


def ensure_kafka_libs(home: Path | None = None) -> Path:
    """The broker's jar folder, fetched once with Maven when missing (``make kafka`` does the same)."""
    home = home or kafka_home()
    libs = _libs(home)
    stamp = libs / f".kafka-{KAFKA_VERSION}"
    if stamp.is_file():
        return libs
    pom = home / "pom.xml"
    if not pom.is_file():
        raise BrokerError(f"no {pom}: set SOCREC_KAFKA_HOME to a folder with the project's kafka/pom.xml")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Apache Kafka's jars are missing and Maven (mvn) is not installed to fetch them")
    tmp = home / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BrokerError(f"fetching Apache Kafka {KAFKA_VERSION} failed:\n{(res.stdout + res.stderr)[-3000:]}")
    if not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise BrokerError(f"Maven ran but {tmp} holds no kafka_2.13-{KAFKA_VERSION}.jar")
    (tmp / stamp.name).touch()
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


def java_command() -> str:
    """``java`` (``SOCREC_JAVA`` overrides), checked to be at least Java 17."""
    java = os.environ.get("SOCREC_JAVA") or shutil.which("java")
    if not java:
        raise BrokerError("Apache Kafka needs Java 17 or newer on PATH (or SOCREC_JAVA); none found")
    return _checked_java(java)


@functools.cache
def _checked_java(java: str) -> str:
    """``java`` once its version is known to be enough: asked once per binary, not per command."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(m.group(1)) if m else 0
    if major == 1 and m and m.group(2):  # "1.8.0_x" style
        major = int(m.group(2))
    if major < MIN_JAVA:
        raise BrokerError(f"Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+; {java} is: {out.strip()[:200]}")
    return java


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as ``random-uuid``),
    never starting with '-' (Kafka's ``Uuid.randomUuid`` skips those too: the storage tool's
    ``-t`` would read one as an option, and formatting failed about once in 64 starts)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class SecureListener:
    """A SASL_SSL listener: SCRAM-SHA-512 users, the broker's PEM key+chain, ACLs on.

    ``keystore_pem``: the broker's unencrypted PKCS#8 private key followed by its certificate
    chain, also its client certificate on the controller listener. ``ca_pem``: the CA the broker
    trusts for its own connections (whatever it signed may use the controller listener).
    ``users``: name -> password, created at format time. ``super_users``: principals ACLs do
    not apply to; the first one, which must be in ``users``, is the broker's inter-broker identity.
    """

    port: int
    keystore_pem: Path
    ca_pem: Path
    users: dict[str, str] = field(default_factory=dict)
    super_users: tuple[str, ...] = ("admin",)


class ApacheKafkaBroker(BrokerProcess):
    """``with ApacheKafkaBroker(data_dir=...) as b: ... b.bootstrap`` -> a ready Apache Kafka node.

    ``port=0`` picks a free port. ``data_dir`` keeps the log (a temporary folder, removed at
    stop, when none is given). ``stop()`` is idempotent: SIGTERM to the process group (Kafka's
    controlled shutdown), SIGKILL after ``stop_timeout`` seconds, then reap.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_dir: str | Path | None = None,
        ready_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        log_path: str | Path | None = None,
        heap_mb: int = 768,
        secure: SecureListener | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        super().__init__(host, port, ready_timeout=ready_timeout, stop_timeout=stop_timeout)
        self.controller_port = free_port(host)
        self.heap_mb = heap_mb
        self.secure = secure
        self.extra_config = dict(extra_config or {})
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="socrec-kafka-"))
        self._log_path = Path(log_path) if log_path else self.data_dir / "broker.log"

    name = "apache-kafka"
    kind: BrokerKind = "kafka"
    version = KAFKA_VERSION
    poll_s = 0.2

    @property
    def secure_bootstrap(self) -> str | None:
        return f"{self.host}:{self.secure.port}" if self.secure else None

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    # -- configuration ----------------------------------------------------------------------
    def server_properties(self) -> dict[str, str]:
        h = self.host
        listeners = [f"{_CLIENT_LISTENER}://{h}:{self.port}"]
        advertised = [f"{_CLIENT_LISTENER}://{h}:{self.port}"]
        protocols = [f"{_CLIENT_LISTENER}:PLAINTEXT", f"{_CONTROLLER_LISTENER}:PLAINTEXT"]
        conf = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{self.controller_port}",
            "controller.listener.names": _CONTROLLER_LISTENER,
            "inter.broker.listener.name": _CLIENT_LISTENER,
            "log.dirs": str(self.log_dir),
            # one node: every internal topic has one replica
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "auto.create.topics.enable": "true",
        }
        if self.secure is not None:
            s = self.secure
            listeners.append(f"{_SECURE_LISTENER}://{h}:{s.port}")
            advertised.append(f"{_SECURE_LISTENER}://{h}:{s.port}")
            protocols[-1] = f"{_CONTROLLER_LISTENER}:SSL"
            protocols.append(f"{_SECURE_LISTENER}:SASL_SSL")
            conf.update(self._security(s))
        conf["listeners"] = ",".join([*listeners, f"{_CONTROLLER_LISTENER}://{h}:{self.controller_port}"])
        conf["advertised.listeners"] = ",".join(advertised)
        conf["listener.security.protocol.map"] = ",".join(protocols)
        conf.update(self.extra_config)
        return conf

    def _security(self, s: SecureListener) -> dict[str, str]:
        """SCRAM on the SASL_SSL listener, client-certificate TLS on the controller's, ACLs on."""
        if not s.super_users or s.super_users[0] not in s.users:
            raise BrokerError("SecureListener: the first super user needs a SCRAM password in users")
        inter, ctl = s.super_users[0], _CONTROLLER_LISTENER.lower()
        conf = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": ";".join([f"User:{_CONTROLLER_PRINCIPAL}", *(f"User:{u}" for u in s.super_users)]),
                "allow.everyone.if.no.acl.found": "false",
                "inter.broker.listener.name": _SECURE_LISTENER,
                "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                # loopback only, and only a certificate ``ca_pem`` signed gets in: the node itself
                f"listener.name.{ctl}.ssl.client.auth": "required",
                f"listener.name.{ctl}.ssl.principal.mapping.rules": f"RULE:^.*$/{_CONTROLLER_PRINCIPAL}/"}  # fmt: skip
        for lname in (_SECURE_LISTENER.lower(), _CONTROLLER_LISTENER.lower()):
            conf |= {f"listener.name.{lname}.ssl.keystore.type": "PEM",
                     f"listener.name.{lname}.ssl.keystore.location": str(s.keystore_pem),
                     f"listener.name.{lname}.ssl.truststore.type": "PEM",
                     f"listener.name.{lname}.ssl.truststore.location": str(s.ca_pem)}  # fmt: skip
        lname = _SECURE_LISTENER.lower()
        conf[f"listener.name.{lname}.sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
        conf[f"listener.name.{lname}.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{inter}" password="{s.users[inter]}";'
        )
        return conf

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        log4j = self.data_dir / "log4j2.properties"
        # with ACLs on, every denial is logged (INFO on kafka.authorizer.logger): what a client lacked
        denials = "logger.acl.name = kafka.authorizer.logger\nlogger.acl.level = INFO\n" if self.secure else ""
        log4j.write_text(
            "status = warn\n"
            "appender.out.type = Console\nappender.out.name = OUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = WARN\nrootLogger.appenderRef.out.ref = OUT\n"
            "logger.server.name = kafka.server.KafkaRaftServer\nlogger.server.level = INFO\n" + denials
        )
        return props

    def _java(self, main: str, *args: str, heap_mb: int = 256) -> list[str]:
        libs = ensure_kafka_libs()
        return [
            java_command(),
            f"-Xmx{heap_mb}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, props: Path) -> None:
        if (self.log_dir / "meta.properties").is_file():
            return  # formatted before: keep its data
        args = ["format", "-t", new_cluster_id(), "-c", str(props)]
        if self.secure is not None:
            for user, password in self.secure.users.items():
                args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        res = subprocess.run(
            self._java("kafka.tools.StorageTool", *args), capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self.log_dir} failed:\n{res.stdout}{res.stderr}")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        if self.proc is not None:
            return self
        for port in (self.port, *((self.secure.port,) if self.secure else ())):
            check_port_free(self.host, port)
        props = self._write_config()
        self._format(props)
        self._spawn(self._java("kafka.Kafka", str(props), heap_mb=self.heap_mb))
        return self

    def run_tool(self, main: str, *args: str, timeout: float = 120.0) -> str:
        """Run one of Kafka's own command-line tools (a Java main class) against this broker."""
        res = subprocess.run(self._java(main, *args), capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise BrokerError(f"{main} {' '.join(args)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        return res.stdout

    def close(self) -> None:
        """Stop, and remove the data folder when this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

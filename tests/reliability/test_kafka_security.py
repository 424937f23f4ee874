"""Issue 18 item 7: security on a real listener (SASL_SSL, SCRAM-SHA-512 over TLS, ACLs).

One Apache Kafka broker per module opens a SASL_SSL listener whose certificate is signed by a
CA made here (``cryptography``); the SCRAM users are created by Kafka's StorageTool at format
time and the ACLs by Kafka's AclCommand, authenticated as the ``admin`` super user. The admin
also creates the topics the worker provisions (``streams.admin``), so only Faust's own topics
need Create. The broker's plaintext listener stays open, but as ``User:ANONYMOUS`` without ACLs.

ACLs (``P`` = the topic prefix, ``A`` = the worker's app id; Read and Write imply Describe; the
worker ran end to end with these and no denial, its idempotent producer needs no cluster ACL):

- ``worker``: Read on the input topics ``P<input>`` and on ``Pmodel-updates`` (hot swap); Write
  on ``Precommendations`` and ``Pdead-letters``; Create, Read, Write on topics prefixed ``A-``
  (Faust's changelogs and assignor topic, which Faust creates itself); Read on the group ``A``.
- ``trainer``: Write on ``Pmodel-updates``.
- ``frontend`` (the test's event producer): Write on the input topics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness.rig import Rig, read_topics
from benchmarks.harness.streams import make_stream
from socrec_online.events import INPUT_TOPICS
from socrec_online.kafka_broker import ApacheKafkaBroker, SecureListener
from socrec_online.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "ksec."
APP_ID = "rel-ksec"
ACL_TOOL = "org.apache.kafka.tools.AclCommand"
PASSWORDS = {u: secrets.token_urlsafe(12) for u in ("admin", "worker", "trainer", "frontend")}


# ----------------------------------------------------------------------------- certificates
@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA clients trust
    other_ca: Path  # a CA that signed nothing of the broker's
    keystore: Path  # the broker's PKCS#8 key + certificate chain, one PEM


def _ca(cn: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _builder(subject: Any, issuer: Any, public_key: Any) -> Any:
    from cryptography import x509

    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def make_pki(folder: Path) -> Pki:
    """A CA, a broker certificate for localhost/127.0.0.1 signed by it, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = serialization.Encoding.PEM
    ca_key, ca = _ca("socrec test CA")
    _, other = _ca("socrec untrusted CA")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = (
        _builder(name, ca.subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    out = Pki(folder / "ca.pem", folder / "other-ca.pem", folder / "broker.pem")
    out.ca.write_bytes(ca.public_bytes(pem))
    out.other_ca.write_bytes(other.public_bytes(pem))
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    out.keystore.write_bytes(key_pem + leaf.public_bytes(pem) + ca.public_bytes(pem))
    return out


# ----------------------------------------------------------------------------- broker
@dataclass(frozen=True)
class Secured:
    broker: ApacheKafkaBroker
    pki: Pki
    bootstrap: str

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        """SOCREC_* settings of a client that authenticates as ``user``."""
        return {
            "SOCREC_KAFKA_BOOTSTRAP": self.bootstrap,
            "SOCREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SOCREC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SOCREC_KAFKA_SASL_USERNAME": user,
            "SOCREC_KAFKA_SASL_PASSWORD": password or PASSWORDS[user],
            "SOCREC_KAFKA_SSL_CAFILE": str(self.pki.ca),
        }

    def settings(self, user: str) -> Settings:
        env = {"SOCREC_TOPIC_PREFIX": PREFIX, "SOCREC_PARTITIONS": "3", **self.env(user)}
        return Settings(**{k[len("SOCREC_") :].lower(): v for k, v in env.items()})  # type: ignore[arg-type]

    def denials(self) -> list[str]:
        log = (self.broker.data_dir / "broker.log").read_text(errors="replace")
        return [line for line in log.splitlines() if " is Denied operation" in line]


def _grant(
    s: Secured, admin_props: Path, principal: str, ops: list[str], *resources: str, prefixed: bool = False
) -> None:
    args = ["--bootstrap-server", s.bootstrap, "--command-config", str(admin_props), "--add",
            "--allow-principal", f"User:{principal}"]  # fmt: skip
    args += [a for op in ops for a in ("--operation", op)]
    args += [*resources, *(("--resource-pattern-type", "prefixed") if prefixed else ())]
    s.broker.run_tool(ACL_TOOL, *args)


def _topics(*bases: str) -> list[str]:
    return [a for b in bases for a in ("--topic", f"{PREFIX}{b}")]


def grant_acls(s: Secured, folder: Path) -> None:
    """The ACLs of the module docstring, through Kafka's AclCommand as the admin super user."""
    props = folder / "admin.properties"
    props.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{PASSWORDS["admin"]}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={s.pki.ca}\n"
    )
    _grant(s, props, "worker", ["Read"], *_topics(*INPUT_TOPICS, "model-updates"))
    _grant(s, props, "worker", ["Write"], *_topics("recommendations", "dead-letters"))
    _grant(s, props, "worker", ["Create", "Read", "Write"], "--topic", f"{APP_ID}-", prefixed=True)
    _grant(s, props, "worker", ["Read"], "--group", APP_ID)
    _grant(s, props, "trainer", ["Write"], *_topics("model-updates"))
    _grant(s, props, "frontend", ["Write"], *_topics(*INPUT_TOPICS))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, broker_kind: str) -> Iterator[Secured]:
    """An Apache Kafka broker with a SASL_SSL listener, SCRAM users, the topics and the ACLs."""
    if broker_kind == "embedded":
        pytest.skip("the embedded broker speaks neither TLS nor SASL")
    from socrec_online.broker import free_port
    from streams.admin import ensure_topics
    from streams.topics import required_topics

    folder = tmp_path_factory.mktemp("kafka-sec")
    pki = make_pki(folder)
    listener = SecureListener(free_port(), pki.keystore, pki.ca, users=dict(PASSWORDS))
    broker = ApacheKafkaBroker(data_dir=folder / "data", secure=listener)
    broker.start()
    try:
        assert broker.secure_bootstrap is not None
        s = Secured(broker, pki, broker.secure_bootstrap)
        admin = s.settings("admin")
        asyncio.run(ensure_topics(admin, required_topics(admin)))
        grant_acls(s, folder)
        yield s
    finally:
        broker.close()


# ----------------------------------------------------------------------------- (a) end to end
def test_worker_with_its_credentials_recommends_over_sasl_ssl(
    secured: Secured, tiny_text_model_path: Path, tmp_path: Path
) -> None:
    rig = Rig(secured.bootstrap, tmp_path / "w", PREFIX, text_model=tiny_text_model_path,
              env={**secured.env("worker"), "SOCREC_APP_ID": APP_ID}, broker_kind="kafka")  # fmt: skip
    try:
        rig.start(timeout=240)
        stream = make_stream(60, partitions=3, seed=3, tag="ks")
        frontend = Rig(secured.bootstrap, tmp_path / "f", PREFIX, env=secured.env("frontend"))
        asyncio.run(frontend.produce(stream))
        ids = {e.event_id for e in stream}
        admin = secured.settings("admin")
        recs: list[Any] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            recs = [
                r.json() for r in asyncio.run(read_topics(admin, [f"{PREFIX}recommendations"])) if r.value
            ]
            if any(r.get("source_event_id") in ids for r in recs):
                break
            time.sleep(1.0)
        assert any(r.get("source_event_id") in ids for r in recs), rig.log_tail()
        assert not [d for d in secured.denials() if "User:worker" in d], secured.denials()[-10:]
    finally:
        rig.stop()


# ----------------------------------------------------------------------------- (b) refusals
def _confluent_errors(secured: Secured, **conf: str) -> list[Any]:
    """Errors a confluent-kafka client reports while it fails to fetch metadata (within 4 s)."""
    from confluent_kafka import KafkaException, Producer

    errors: list[Any] = []
    p = Producer({"bootstrap.servers": secured.bootstrap, "error_cb": errors.append, **conf})
    with pytest.raises(KafkaException):
        p.list_topics(timeout=4)
    p.poll(0.5)
    return errors


def _sasl(password: str, ca: Path) -> dict[str, str]:
    return {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "worker",
            "sasl.password": password, "ssl.ca.location": str(ca)}  # fmt: skip


def test_wrong_password_plaintext_and_untrusted_ca_are_refused(secured: Secured) -> None:
    from confluent_kafka import KafkaError, Producer

    from socrec_online.broker import kafka_ping

    good = Producer({"bootstrap.servers": secured.bootstrap, **_sasl(PASSWORDS["worker"], secured.pki.ca)})
    assert good.list_topics(timeout=15).brokers  # the same client with the right secrets gets in

    errs = _confluent_errors(secured, **_sasl("not-the-password", secured.pki.ca))
    auth = [e for e in errs if e.code() == KafkaError._AUTHENTICATION]
    assert auth and "invalid credentials with SASL mechanism SCRAM-SHA-512" in auth[0].str(), errs

    errs = _confluent_errors(secured, **_sasl(PASSWORDS["worker"], secured.pki.other_ca))
    tls = [e for e in errs if e.code() == KafkaError._SSL]
    assert tls and "certificate verify failed" in tls[0].str(), errs

    host, port = secured.bootstrap.rsplit(":", 1)
    with pytest.raises(ConnectionError, match="closed the connection"):
        kafka_ping(host, int(port), timeout=5.0)  # a plaintext Kafka request: no answer, connection closed
    assert _confluent_errors(secured)  # and a PLAINTEXT client gets no metadata


def test_worker_with_a_wrong_password_reports_authentication_failure(
    secured: Secured, tiny_text_model_path: Path, tmp_path: Path
) -> None:
    from streams.procs import WorkerProcess

    env = {**secured.env("worker", "not-the-password"), "SOCREC_APP_ID": APP_ID}
    rig = Rig(secured.bootstrap, tmp_path / "w", PREFIX, text_model=tiny_text_model_path, env=env)
    w = WorkerProcess(rig.env, log_path=tmp_path / "worker.log").start()
    t0 = time.monotonic()
    while w.alive() and time.monotonic() - t0 < 60:
        time.sleep(0.5)
    alive = w.alive()
    w.stop(timeout=15)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert not alive and w.proc is not None and w.proc.returncode != 0, log[-3000:]  # it gives up
    assert "SaslAuthenticationFailed" in log and "invalid credentials" in log, log[-3000:]
    assert not w.ready_file.exists()


# ----------------------------------------------------------------------------- (c) ACLs
async def _send(settings: Settings, topic: str) -> Any:
    from aiokafka import AIOKafkaProducer

    from streams.app import kafka_client_kwargs

    p = AIOKafkaProducer(**kafka_client_kwargs(settings), acks="all", request_timeout_ms=15000)
    await p.start()
    try:
        return await p.send_and_wait(topic, b'{"probe": true}', key=b"probe")
    finally:
        await p.stop()


def test_only_the_trainer_writes_model_updates_not_the_worker_nor_anonymous(secured: Secured) -> None:
    from aiokafka.errors import TopicAuthorizationFailedError

    topic = f"{PREFIX}model-updates"
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_send(secured.settings("worker"), topic))
    assert any("User:worker" in d and "WRITE" in d.upper() and topic in d for d in secured.denials())
    meta = asyncio.run(_send(secured.settings("trainer"), topic))
    assert meta.topic == topic and meta.offset >= 0
    with pytest.raises(TopicAuthorizationFailedError):  # and the trainer cannot write recommendations
        asyncio.run(_send(secured.settings("trainer"), f"{PREFIX}recommendations"))
    plain = Settings(kafka_bootstrap=secured.broker.bootstrap)  # the plaintext listener: User:ANONYMOUS
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_send(plain, topic))

"""Must 8: security settings reach the Kafka clients, secrets stay secret, loopback by default,
no ids as metric labels, and nothing in the load path can unpickle."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from benchmarks.harness.rig import Rig
from benchmarks.harness.streams import make_stream
from socrec_online.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55-do-not-log"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "client.pem", d / "client.key"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=socrec-test"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl unavailable: {exc}")
    return cert, key


def test_ssl_and_sasl_environment_reaches_faust_and_aiokafka(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import faust

    from streams.app import create_app, credentials, kafka_client_kwargs

    cert, key = tls_files
    monkeypatch.setenv("SOCREC_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SOCREC_KAFKA_SSL_CAFILE", str(cert))
    monkeypatch.setenv("SOCREC_KAFKA_SSL_CERTFILE", str(cert))
    monkeypatch.setenv("SOCREC_KAFKA_SSL_KEYFILE", str(key))
    monkeypatch.setenv("SOCREC_BROKER", "kafka")
    s = Settings(web_port=0)
    cred = credentials(s)
    assert isinstance(cred, faust.SSLCredentials) and cred.context is not None
    kw = kafka_client_kwargs(s)
    assert kw["security_protocol"] == "SSL" and kw["ssl_context"] is not None
    assert create_app(s).conf.broker_credentials is not None

    monkeypatch.setenv("SOCREC_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SOCREC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SOCREC_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("SOCREC_KAFKA_SASL_PASSWORD", SECRET)
    s = Settings(web_port=0)
    kw = kafka_client_kwargs(s)
    assert kw["security_protocol"] == "SASL_PLAINTEXT" and kw["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kw["sasl_plain_username"] == "svc" and kw["sasl_plain_password"] == SECRET
    assert kw.get("ssl_context") is None  # SASL without TLS: no context
    app = create_app(s)
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert SECRET not in repr(app.conf.broker_credentials) and SECRET not in repr(s) and SECRET not in str(s)


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_with_a_sasl_password_never_prints_it(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    env = {
        "SOCREC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SOCREC_KAFKA_SASL_MECHANISM": "PLAIN",
        "SOCREC_KAFKA_SASL_USERNAME": "svc",
        "SOCREC_KAFKA_SASL_PASSWORD": SECRET,
        "SOCREC_KAFKA_SSL_PASSWORD": SECRET + "-pem",
    }
    rig = rig_factory("sec.", env=env, loglevel="DEBUG")
    from streams.procs import WorkerProcess

    # The embedded broker speaks no SASL: the worker tries with the password, fails, logs (at
    # DEBUG) and exits or retries. Whatever it does, the password must not be in what it prints.
    w = WorkerProcess(rig.env, log_path=tmp_path / "sasl-worker.log", loglevel="DEBUG").start()
    deadline = time.monotonic() + 25
    while w.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    w.stop(timeout=15)
    log = (tmp_path / "sasl-worker.log").read_text(errors="replace")
    assert "Sasl" in log, log[-3000:]  # it did try SASL with the credentials (so the grep means something)
    assert SECRET not in log
    cfg = subprocess.run(
        [sys.executable, "-m", "streams", "config"],  # = socrec config
        env={**os.environ, **rig.env}, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "SOCREC_KAFKA_SASL_USERNAME=svc" in cfg.stdout
    assert SECRET not in cfg.stdout + cfg.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_worker_listens_on_loopback_only_and_no_metric_label_is_an_id(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("lbl.")
    for k in ("SOCREC_METRICS_HOST", "SOCREC_WEB_HOST"):
        rig.env.pop(k, None)  # the defaults
    asyncio.run(rig.ensure_topics())
    rig.start()
    stream = make_stream(400, partitions=3, seed=9, tag="lb")
    asyncio.run(rig.produce(stream))
    deadline = time.monotonic() + 90
    from streams.observe import events_done

    while events_done(rig.metrics()) < len(stream) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rig.pid is not None
    procs = [psutil.Process(rig.pid), *psutil.Process(rig.pid).children(recursive=True)]
    listening = [
        c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert listening, listening  # metrics (Faust's web server is off: streams/app.py WEB_OFF)
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{rig.port}/metrics", timeout=5).read().decode()
    values = set(re.findall(r'="((?:[^"\\]|\\.)*)"', text))
    ids = {getattr(e, a) for e in stream for a in ("user_id", "item_id", "target_id", "event_id") if hasattr(e, a)}
    assert "socrec_events_total" in text and values
    assert not values & ids, sorted(values & ids)[:10]


_PICKLE_PATTERNS = [
    re.compile(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\b"),
    re.compile(r"\b(c?pickle|dill|cloudpickle|joblib)\.(loads?|Unpickler)\b"),
    re.compile(r"allow_pickle\s*=\s*True"),
]


def test_no_pickle_anywhere_in_the_package_and_torch_load_is_weights_only() -> None:
    offenders = []
    for base in ("socrec_online", "streams"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if any(p.search(code) for p in _PICKLE_PATTERNS):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
                if "torch.load(" in code and "weights_only=True" not in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_a_snapshot_loads_with_pickle_disabled(
    tiny_text_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    import torch

    from socrec_online import snapshot
    from socrec_online.models.recommender import (
        FusedRecommender,
        RecommenderConfig,
        load_recommender,
        save_recommender,
    )
    from socrec_online.models.text import TextEncoder, TextEncoderConfig
    from socrec_online.service.fused import FusedScorer

    enc = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path)))
    torch.manual_seed(0)
    model = FusedRecommender(RecommenderConfig(n_users=3, n_items=4, text_dim=enc.dim, dim=16))
    info = save_recommender(tmp_path, model, ["a", "b", "c"], ["i0", "i1", "i2", "i3"], {})

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("pickle used in the snapshot load path")

    class NoUnpickler:
        def __init__(self, *_a: object, **_k: object) -> None:
            refuse()

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", NoUnpickler)
    tensors, manifest = snapshot.load_snapshot(tmp_path / info.version)
    assert tensors and manifest["version"] == info.version
    loaded, users, items, _m = load_recommender(tmp_path / info.version)
    assert users == ["a", "b", "c"] and items == ["i0", "i1", "i2", "i3"]
    for name, t in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], t)
    assert FusedScorer.load(tmp_path / info.version) is not None

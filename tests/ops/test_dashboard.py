"""The Grafana dashboard against real data: a real Prometheus (Debian's binary) scrapes a real
worker (``python -m streams worker`` on the test broker, tiny BERT text tower) on loopback
while events flow, and every PromQL expression of docker/grafana/dashboards/socrec.json must
return data through Prometheus' HTTP API. The alert rules are loaded too and must evaluate
without errors against the same live series.

Panels whose metric only the trainer exports (fine-tune outcomes), or that only an incident
fills (a refused snapshot, an agent error, an offset reset), cannot have samples in this run;
for those the test checks that Prometheus scraped the metric's declaration (HELP/TYPE) from the
worker, and says so in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _ci import skip_unless_ci

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "socrec.json"
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
JOB = "socrec-worker"  # the job name of docker/prometheus/prometheus.yml (queries select on it)
RATE_INTERVAL = "1m"  # what Grafana's $__rate_interval is with the 15 s scrape of compose
GRAFANA_VARIABLES = {"$__rate_interval": RATE_INTERVAL, "$instance": ".*"}  # .* = the "All" choice
# metric -> why a worker process of this run has no samples of it
_TRAINER = "counted by `socrec trainer`, which this test does not run"
NO_SAMPLES_EXPECTED = {
    "socrec_finetune_runs_total": _TRAINER,
    "socrec_finetune_duration_seconds_bucket": _TRAINER,
    "socrec_snapshot_last_success_timestamp_seconds": "a zero-shot worker has loaded no snapshot",
    "socrec_snapshot_rejected_total": "no snapshot is refused",
    "socrec_model_swaps_total": "no model is swapped",
    "socrec_consumer_offset_resets_total": "the broker loses no data",
    "socrec_consumer_delivery_gaps_total": "Faust drops no fetched records",
    "socrec_agent_errors_total": "no agent fails",
    "socrec_query_latency_seconds_bucket": "the feed may hold no query",
    "socrec_state_values_skipped_total": "no table value read back is malformed",
    "socrec_misrouted_total": "its producer keys with murmur2: every record is on its owner partition",
    "socrec_input_rereads_total": "no record is handed over twice in this run",
    "socrec_state_trimmed_total": "no table value reaches its byte bound",
    "socrec_api_requests_total": "its worker has no SOCREC_API_TOKEN: the read API is off",
    "socrec_api_request_duration_seconds_bucket": "its worker has no SOCREC_API_TOKEN: the read API is off",
}

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(180)]


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []
    stack = list(dash["panels"])
    while stack:
        p = stack.pop(0)
        stack.extend(p.get("panels", []))
        out += [(p["title"], t["expr"]) for t in p.get("targets", []) if t.get("expr")]
    return out


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Prometheus:
    """The Debian ``prometheus`` binary on a free loopback port with a temporary TSDB."""

    def __init__(self, workdir: Path, target: str) -> None:
        from socrec_online.broker import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def wait_scraping(self, timeout: float = 30.0) -> None:
        """Until the target has been scraped successfully (discovery applies targets after ~5 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r["value"][1] == "1" for r in self.query(f'up{{job="{JOB}"}}')):
                return
            time.sleep(0.5)
        raise RuntimeError(f"target never scraped: {self.api('targets')}\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        body = _get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def _has_data(result: list[dict[str, Any]]) -> bool:
    """Non-empty, and at least one finite value (a quantile over no observations is NaN)."""
    return any(math.isfinite(float(r["value"][1])) for r in result)


async def _feed(bootstrap: str, n_events: int, rate: float) -> None:
    """A small synthetic stream (catalogue, graph, profiles, then interactions) plus bad records."""
    from socrec_online.data import load_dataset
    from socrec_online.settings import Settings
    from streams.replay import EventProducer, produce, split_stream

    settings = Settings(kafka_bootstrap=bootstrap)  # type: ignore[call-arg]
    head, live = split_stream(load_dataset("synthetic", seed=3, n_users=60, n_items=150))
    async with EventProducer(settings) as producer:
        await produce(producer, head, 0.0)
        await producer.send_raw("clicks", "u1", b"{not json")  # -> dead-letters, reason bad_json
        await producer.send_raw("likes", "u2", b'{"event_id": "x", "user_id": "u2"}')  # missing_field
        await produce(producer, [ev for _, ev in zip(range(n_events), live, strict=False)], rate)
        await producer.flush()


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        skip_unless_ci("prometheus not found: install Debian's prometheus package (make test does)")
    return path


@pytest.fixture(scope="module")
def live_stack(
    tmp_path_factory: pytest.TempPathFactory, tiny_text_model_path: Path, prometheus_bin: str, broker_kind: str
) -> Iterator[Prometheus]:
    """Broker, one worker and Prometheus scraping it; everything is stopped afterwards."""
    from socrec_online.broker import free_port
    from socrec_online.brokers import make_broker
    from streams.procs import WorkerProcess

    tmp_path = tmp_path_factory.mktemp("ops_dashboard")
    with contextlib.ExitStack() as stack:
        broker = make_broker(broker_kind, data_dir=tmp_path / "kafka", log_path=tmp_path / "broker.log")  # type: ignore[arg-type]
        stack.enter_context(contextlib.closing(broker.start()))
        env = {
            "SOCREC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SOCREC_BROKER": broker_kind,
            "SOCREC_APP_ID": "socrec-dashboard-test",
            "SOCREC_PARTITIONS": "2",
            "SOCREC_METRICS_HOST": "127.0.0.1",
            "SOCREC_METRICS_PORT": "0",
            "SOCREC_WEB_PORT": str(free_port()),
            "SOCREC_DATA_DIR": str(tmp_path / "runs"),
            "SOCREC_SNAPSHOT_DIR": str(tmp_path / "snapshots"),
            "SOCREC_TEXT_MODEL_PATH": str(tiny_text_model_path),
            "SOCREC_DEVICE": "cpu",
            "SOCREC_TORCH_THREADS": "1",
        }
        worker = stack.enter_context(WorkerProcess(env, log_path=tmp_path / "worker.log"))
        ready = worker.wait_ready(timeout=90)
        prom = Prometheus(tmp_path, f"127.0.0.1:{ready['metrics_port']}")
        stack.callback(prom.stop)
        prom.wait_ready()
        prom.wait_scraping()
        stack.callback(lambda: print("--- worker log tail ---\n" + worker.log_tail()))
        asyncio.run(_feed(broker.bootstrap, n_events=400, rate=200.0))
        yield prom


def test_every_dashboard_expression_returns_data(live_stack: Prometheus) -> None:
    prom = live_stack
    exprs = dashboard_exprs()
    queries = {}
    for _, e in exprs:
        q = e
        for var, value in GRAFANA_VARIABLES.items():
            q = q.replace(var, value)
        queries[e] = q
    assert all("$" not in q for q in queries.values()), "a Grafana variable the test does not substitute"

    up = prom.query(f'up{{job="{JOB}"}}')
    assert up and up[0]["value"][1] == "1", f"worker target not up: {prom.api('targets')}"

    no_samples = {e for e in queries if any(m in e for m in NO_SAMPLES_EXPECTED)}
    missing: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 45
    while True:
        missing = {}
        for expr, q in queries.items():
            result = prom.query(q)
            if not _has_data(result) and expr not in no_samples:
                missing[expr] = result
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    titles = {e: t for t, e in exprs}
    assert not missing, "panels without data:\n" + "\n".join(
        f"  {titles[e]}: {e} -> {r}" for e, r in missing.items()
    )

    for expr in sorted(no_samples):
        if _has_data(prom.query(queries[expr])):
            continue  # the series exist (initialised at 0): verified like the others
        for metric, why in NO_SAMPLES_EXPECTED.items():
            if metric in expr:
                # OpenMetrics names a counter family without its _total suffix, a histogram without _bucket.
                family = metric.removesuffix("_total").removesuffix("_bucket")
                meta = prom.api("targets/metadata", metric=family, match_target=f'{{job="{JOB}"}}')
                assert meta, f"{metric} was not even declared by the worker's /metrics"
                warnings.warn(
                    f"dashboard {expr!r}: no samples in a worker ({why}); declaration seen", stacklevel=1
                )


def test_alert_rules_evaluate_on_live_series(live_stack: Prometheus) -> None:
    """Every rule runs against the real worker's series without a PromQL error."""
    time.sleep(3)  # at least a couple of rule evaluations after the feed
    groups = live_stack.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in yaml.safe_load(ALERTS.read_text())["groups"])
    bad = {r["name"]: r.get("lastError") for r in rules if r.get("health") != "ok"}
    assert not bad, bad
    firing = {a["labels"]["alertname"] for a in live_stack.api("alerts")["alerts"] if a["state"] == "firing"}
    assert "SocrecWorkerDown" not in firing and "SocrecNoWorkerUp" not in firing

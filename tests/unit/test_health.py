"""The liveness decision (socrec_online/health.py) and the routes on the metrics server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from socrec_online import metrics, ops_http
from socrec_online.health import HealthCheck, assess


def test_pending_input_without_progress_is_stuck_and_idle_is_not() -> None:
    idle = assess(pending=0, seconds_since_progress=3600, stuck_after_s=60)
    assert idle.status == "ok" and idle.http_status == 200 and idle.reason == "idle"
    busy = assess(pending=500, seconds_since_progress=59.9, stuck_after_s=60)
    assert busy.status == "ok" and busy.reason == "processing"
    stuck = assess(pending=500, seconds_since_progress=60.0, stuck_after_s=60)
    assert stuck.status == "stuck" and stuck.http_status == 503
    assert "500 events pending" in stuck.reason
    body = json.loads(stuck.to_json())
    assert body["status"] == "stuck" and body["pending"] == 500 and body["stuck_after_seconds"] == 60


def test_a_lag_reading_that_stops_refreshing_means_a_blocked_event_loop() -> None:
    h = assess(pending=0, seconds_since_progress=1.0, stuck_after_s=30, lag_age_s=31.0)
    assert h.status == "stuck" and "event loop" in h.reason
    assert assess(pending=0, seconds_since_progress=1.0, stuck_after_s=30, lag_age_s=2.0).status == "ok"


@pytest.fixture
def clean_marks() -> Iterator[None]:
    saved = dict(metrics._marks)
    metrics._marks.clear()
    yield
    metrics._marks.clear()
    metrics._marks.update(saved)
    metrics.CONSUMER_LAG.clear()
    metrics.CONSUMER_IN_FLIGHT.clear()


def test_health_check_reads_the_worker_metrics(clean_marks: None) -> None:
    now = [1000.0]
    check = HealthCheck(stuck_after_s=10, clock=lambda: now[0])
    metrics.CONSUMER_LAG.labels(topic="clicks").set(7)
    metrics.CONSUMER_LAG.labels(topic="likes").set(5)
    metrics.CONSUMER_IN_FLIGHT.labels(topic="clicks").set(3)  # fetched, in the agent's buffer
    h = check()
    assert h.pending == 15 and h.status == "ok"  # just started: not stuck before its first batch
    assert h.batch_age_seconds is None
    now[0] += 11  # 11 s since monitoring started, still no batch, input pending
    assert check().status == "stuck"
    metrics.mark_batch()  # a batch finished just now
    assert check().status == "ok"
    metrics.CONSUMER_LAG.labels(topic="clicks").set(0)
    metrics.CONSUMER_LAG.labels(topic="likes").set(0)
    assert check().reason == "processing"  # lag 0, but 3 events still in flight
    metrics.CONSUMER_IN_FLIGHT.labels(topic="clicks").set(0)
    assert check().reason == "idle"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def test_routes_beside_metrics_and_a_failing_route_is_a_503() -> None:
    port = ops_http.start_metrics_server("127.0.0.1", 0)
    try:
        ops_http.add_route("/healthz", lambda: (503, b'{"status": "stuck"}'))

        def broken() -> tuple[int, bytes]:
            raise RuntimeError("boom")

        ops_http.add_route("/broken", broken)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and json.loads(body)["status"] == "stuck"
        status, body = _get(f"http://127.0.0.1:{port}/broken")
        assert status == 503 and "boom" in json.loads(body)["reason"]
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"socrec_batch_age_seconds" in body
    finally:
        ops_http.remove_route("/healthz")
        ops_http.remove_route("/broken")
        ops_http.stop_metrics_server()

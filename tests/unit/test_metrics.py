"""The metrics endpoint serves DESIGN.md's names, on loopback, without id labels."""

from __future__ import annotations

import time
import urllib.request

from socrec_online import metrics, ops_http

DESIGN_NAMES = [
    "socrec_events_total",
    "socrec_dead_letters_total",
    "socrec_stage_duration_seconds",
    "socrec_end_to_end_latency_seconds",
    "socrec_recommendations_total",
    "socrec_graph_nodes",
    "socrec_graph_edges",
    "socrec_model_info",
    "socrec_snapshot_last_success_timestamp_seconds",
    "socrec_finetune_runs_total",
    "socrec_online_hit_ratio",
    "socrec_consumer_lag",
    "socrec_last_commit_age_seconds",
    "socrec_batch_age_seconds",
    "socrec_snapshot_rejected_total",
    "socrec_finetune_duration_seconds",
    "socrec_text_cache_hits_total",
]


def test_server_serves_design_metrics_on_loopback() -> None:
    metrics.EVENTS.labels(topic="clicks", outcome="ok").inc()
    metrics.DEAD_LETTERS.labels(reason="bad_json").inc()
    metrics.CONSUMER_LAG.labels(topic="clicks").set(3)
    metrics.SNAPSHOT_REJECTED.labels(reason="checksum").inc()
    metrics.FINETUNE_RUNS.labels(outcome="ok").inc()
    metrics.RECOMMENDATIONS.labels(kind="items").inc()
    metrics.GRAPH_NODES.labels(kind="users").set(1)
    metrics.set_model_version("zero-shot")
    port = ops_http.start_metrics_server("127.0.0.1", 0)
    try:
        assert port > 0
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        ops_http.stop_metrics_server()
    for name in DESIGN_NAMES:
        assert f"\n{name}" in body or body.startswith(name) or f"# TYPE {name}" in body, name
    assert "process_resident_memory_bytes" in body


def test_stage_times_a_block() -> None:
    before = metrics.sample("socrec_stage_duration_seconds_count", {"stage": "decode"}) or 0.0
    with metrics.stage("decode"):
        time.sleep(0.01)
    assert metrics.sample("socrec_stage_duration_seconds_count", {"stage": "decode"}) == before + 1
    assert (metrics.sample("socrec_stage_duration_seconds_sum", {"stage": "decode"}) or 0) >= 0.01


def test_one_model_version_at_a_time() -> None:
    metrics.set_model_version("zero-shot")
    metrics.set_model_version("v0002")
    assert metrics.sample("socrec_model_info", {"version": "v0002"}) == 1.0
    assert metrics.sample("socrec_model_info", {"version": "zero-shot"}) is None


def test_batch_age_grows_until_marked() -> None:
    metrics.mark_batch()
    time.sleep(0.05)
    age = metrics.sample("socrec_batch_age_seconds") or 0.0
    assert age >= 0.04
    metrics.mark_batch()
    assert (metrics.sample("socrec_batch_age_seconds") or 0.0) < age


def test_no_metric_is_labelled_by_an_id() -> None:
    allowed = {"topic", "outcome", "reason", "stage", "kind", "version", "agent", "table", "route", "code"}
    for collector in list(metrics.REGISTRY._collector_to_names):
        labels = set(getattr(collector, "_labelnames", ()))
        assert labels <= allowed, (collector, labels)
        assert not any("id" in lab for lab in labels)

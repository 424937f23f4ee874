"""The engine's metrics across the process boundary (``SOCREC_ENGINE_PROCESS``).

The worker runs its engine in a child process (no interpreter lock shared with the Kafka client).
The engine's metrics then move in the child's registry: the child exports what changed since its
last export with every answer (``export_engine_deltas``) and the worker adds it into its own
metrics (``apply_engine_deltas``), so /metrics shows one process and no series is doubled or lost.
"""

from __future__ import annotations

from typing import Any

from socrec_online.metrics import (
    ANN_ITEMS,
    EVENTS,
    EVICTIONS,
    GRAPH_EDGES,
    GRAPH_NODES,
    ITEM_FRESHNESS,
    MODEL_SWAPS,
    ONLINE_HIT_RATIO,
    SNAPSHOT_LAST_SUCCESS,
    SNAPSHOT_REJECTED,
    STAGE_SECONDS,
    STATE_SKIPPED,
    STATE_TRIMMED,
    TEXT_CACHE_HITS,
    TEXT_CACHE_MISSES,
    TEXTS_ENCODED,
)

ENGINE_SIDE: tuple[Any, ...] = (
    EVENTS,
    STAGE_SECONDS,
    ITEM_FRESHNESS,
    GRAPH_NODES,
    GRAPH_EDGES,
    MODEL_SWAPS,
    SNAPSHOT_REJECTED,
    SNAPSHOT_LAST_SUCCESS,
    ONLINE_HIT_RATIO,
    TEXT_CACHE_HITS,
    TEXT_CACHE_MISSES,
    TEXTS_ENCODED,
    ANN_ITEMS,
    STATE_SKIPPED,
    STATE_TRIMMED,
    EVICTIONS,
)
_ENGINE_BY_NAME = {m._name: m for m in ENGINE_SIDE}
_exported: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def _labelled(metric: Any, labels: dict[str, str]) -> Any:
    return metric.labels(**labels) if labels else metric


def export_engine_deltas() -> list[list[Any]]:
    """[name, type, labels, payload] rows: counter increments, gauge values, histogram bucket
    increments (non-cumulative, then the sum's increment) since the previous call."""
    rows: list[list[Any]] = []
    for metric in ENGINE_SIDE:
        for family in metric.collect():
            if family.type == "histogram":
                series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
                for s in family.samples:
                    labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                    d = series.setdefault(labels, {"buckets": [], "sum": 0.0})
                    if s.name.endswith("_bucket"):
                        d["buckets"].append(s.value)
                    elif s.name.endswith("_sum"):
                        d["sum"] = s.value
                for labels, d in series.items():
                    key = (metric._name, labels)
                    prev = _exported.get(key) or ([0.0] * len(d["buckets"]), 0.0)
                    cum = d["buckets"]
                    if cum == prev[0]:
                        continue
                    per = [c - (cum[i - 1] if i else 0.0) for i, c in enumerate(cum)]
                    prev_per = [c - (prev[0][i - 1] if i else 0.0) for i, c in enumerate(prev[0])]
                    inc = [a - b for a, b in zip(per, prev_per, strict=True)]
                    rows.append([metric._name, "histogram", dict(labels), [inc, d["sum"] - prev[1]]])
                    _exported[key] = (list(cum), d["sum"])
                continue
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                labels = tuple(sorted(s.labels.items()))
                key = (metric._name, labels)
                if family.type == "counter":
                    delta = s.value - float(_exported.get(key, 0.0))
                    if delta:
                        rows.append([metric._name, "counter", dict(labels), delta])
                        _exported[key] = s.value
                elif _exported.get(key) != s.value:
                    rows.append([metric._name, "gauge", dict(labels), s.value])
                    _exported[key] = s.value
    return rows


def apply_engine_deltas(rows: list[list[Any]]) -> None:
    """Add a child engine's exported changes into this process's metrics."""
    for name, kind, labels, payload in rows:
        metric = _ENGINE_BY_NAME.get(name)
        if metric is None:
            continue
        child = _labelled(metric, labels)
        if kind == "counter":
            child.inc(payload)
        elif kind == "gauge":
            child.set(payload)
        elif kind == "histogram":
            inc, total = payload
            for bucket, n in zip(child._buckets, inc, strict=True):  # no public API adds counts
                if n:
                    bucket.inc(n)
            child._sum.inc(total)

"""Every Prometheus metric of the service, defined once (DESIGN.md 'Metrics').

One module-level registry (not prometheus_client's global one) so a test or a second app in
the same process cannot collide with ours, and so the worker serves exactly this set plus
the process collectors. Base units (seconds, bytes), prefix ``socrec_``, and never an id as a
label: user/item ids would explode cardinality and leak data.

Served over HTTP by ``socrec_online.ops_http``; an engine in a child process sends its changes to
the worker through ``socrec_online.service.metrics_bridge``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Fine at the low end: a stage of a 256-event batch takes ~0.1-50 ms.
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS = Counter(
    "socrec_events_total",
    "Input events by topic and outcome (ok, duplicate, rejected, dead_letter).",
    ["topic", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "socrec_dead_letters_total", "Events routed to dead-letters, by reason.", ["reason"], registry=REGISTRY
)
MISROUTED = Counter(
    "socrec_misrouted_total",
    "Input records read from a partition other than their owner id's (murmur2) one, by topic: re-produced "
    "once to that partition, where the worker owning the id's state applies them (streams.routing).",
    ["topic"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "socrec_stage_duration_seconds",
    "Time per pipeline stage of one micro-batch.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
E2E_LATENCY = Histogram(
    "socrec_end_to_end_latency_seconds",
    "Event timestamp to recommendation published.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUERY_LATENCY = Histogram(
    "socrec_query_latency_seconds",
    "Query event timestamp to its answer published.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ITEM_FRESHNESS = Histogram(
    "socrec_item_freshness_seconds",
    "Item event timestamp to the item being recommendable.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BATCH_EVENTS = Histogram(
    "socrec_batch_events",
    "Events per micro-batch.",
    buckets=(1, 4, 16, 32, 64, 128, 256, 512, 1024, 4096),
    registry=REGISTRY,
)
RECOMMENDATIONS = Counter(
    "socrec_recommendations_total", "Recommendation messages published, by kind.", ["kind"], registry=REGISTRY
)
GRAPH_NODES = Gauge(
    "socrec_graph_nodes", "Nodes in the worker's graph, by kind.", ["kind"], registry=REGISTRY
)
GRAPH_EDGES = Gauge("socrec_graph_edges", "Follow edges in the worker's graph.", registry=REGISTRY)
MODEL_INFO = Gauge(
    "socrec_model_info", "1 for the model version now serving.", ["version"], registry=REGISTRY
)
SNAPSHOT_LAST_SUCCESS = Gauge(
    "socrec_snapshot_last_success_timestamp_seconds",
    "When the last snapshot was published or loaded.",
    registry=REGISTRY,
)
SNAPSHOTS_PUBLISHED = Counter("socrec_snapshots_published_total", "Snapshots published.", registry=REGISTRY)
SNAPSHOT_REJECTED = Counter(
    "socrec_snapshot_rejected_total",
    "Snapshots refused (gate, checksum, format), by reason.",
    ["reason"],
    registry=REGISTRY,
)
MODEL_SWAPS = Counter(
    "socrec_model_swaps_total", "Model hot-swaps, by outcome.", ["outcome"], registry=REGISTRY
)
FINETUNE_RUNS = Counter(
    "socrec_finetune_runs_total", "Fine-tuning runs, by outcome.", ["outcome"], registry=REGISTRY
)
FINETUNE_SECONDS = Histogram(
    "socrec_finetune_duration_seconds",
    "Duration of one fine-tuning run.",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
ONLINE_HIT_RATIO = Gauge(
    "socrec_online_hit_ratio",
    "Share of recent clicks on an item recently recommended to that user.",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "socrec_consumer_lag", "Messages not yet consumed, by topic.", ["topic"], registry=REGISTRY
)
ASSIGNED_PARTITIONS = Gauge(
    "socrec_assigned_partitions",
    "Input partitions this worker consumes, by topic: over all workers each is counted once when the group is "
    "stable; a worker at 0 gets no events.",
    ["topic"],
    registry=REGISTRY,
)
CONSUMER_IN_FLIGHT = Gauge(
    "socrec_consumer_in_flight",
    "Messages read from Kafka but not yet committed (in the agent's buffer, batch or held), by topic.",
    ["topic"],
    registry=REGISTRY,
)
OFFSET_RESETS = Counter(
    "socrec_consumer_offset_resets_total",
    "Input partitions resumed elsewhere because the broker's log no longer backed the consumer position "
    "(the log went backwards: a broker that lost its data), by topic and reason (log_shorter, record_replaced, behind_read_mark).",
    ["topic", "reason"],
    registry=REGISTRY,
)
INPUT_REREADS = Counter(
    "socrec_input_rereads_total",
    "Input records the consumer handed over again after this worker process had handled them (a "
    "rebalance's seek back to the committed offset, a hole read again): dropped, by topic, so a re-read "
    "writes no second dead letter, recommendation or state change (streams.rereads).",
    ["topic"],
    registry=REGISTRY,
)
DELIVERY_GAPS = Counter(
    "socrec_consumer_delivery_gaps_total",
    "Input records handed to the agent right after a hole in their partition (offsets fetched and dropped "
    "by the stream layer, not a hole in the log): read again from the hole, by topic.",
    ["topic"],
    registry=REGISTRY,
)
TEXT_CACHE_HITS = Counter("socrec_text_cache_hits_total", "Text embedding cache hits.", registry=REGISTRY)
TEXT_CACHE_MISSES = Counter(
    "socrec_text_cache_misses_total", "Text embedding cache misses.", registry=REGISTRY
)
TEXTS_ENCODED = Counter(
    "socrec_texts_encoded_total", "Texts run through the text encoder.", registry=REGISTRY
)
SHARED_STATE_APPLIED = Counter(
    "socrec_shared_state_applied_total",
    "Table values written by other workers (their partitions) applied to this worker's engine.",
    registry=REGISTRY,
)
ANN_ITEMS = Gauge("socrec_ann_index_items", "Item vectors in the ANN index.", registry=REGISTRY)
STATE_SKIPPED = Counter(
    "socrec_state_values_skipped_total",
    "Table values a rebuild of the engine from the tables (restore, or other workers' values) left out: "
    "reason=malformed (the whole value), reason=unknown_item (an engagement naming an item not in the "
    "catalogue, left out of the derived state only).",
    ["table", "reason"],
    registry=REGISTRY,
)
STATE_TRIMMED = Counter(
    "socrec_state_trimmed_total",
    "Entries a table value forgot to stay within SOCREC_MAX_TABLE_VALUE_BYTES (a user's oldest seen items, "
    "then comments, then engagements), by table.",
    ["table"],
    registry=REGISTRY,
)
EVICTIONS = Counter(
    "socrec_evictions_total",
    "Users and items the retention sweep evicted (their table values deleted), by kind (users, items): a user "
    "once, whether their activity value, their follows value or both went. Deletions taken over from another "
    "worker's sweep are counted by that worker only.",
    ["kind"],
    registry=REGISTRY,
)
for _kind in ("users", "items"):  # both series exist from the start: the dashboard shows 0, not "no data"
    EVICTIONS.labels(kind=_kind)
BREAKER_TRIPS = Counter(
    "socrec_breaker_trips_total",
    "Micro-batches the engine failed on breaker_failures times in a row: their events were then applied one by "
    "one and each that failed alone was dead-lettered (processing_failed).",
    registry=REGISTRY,
)
AGENT_ERRORS = Counter(
    "socrec_agent_errors_total",
    "Unexpected errors caught in a stream agent, by agent.",
    ["agent"],
    registry=REGISTRY,
)

API_REQUESTS = Counter(
    "socrec_api_requests_total",
    "Requests to the worker's read API (docs/api.md), by route template and HTTP status code.",
    ["route", "code"],
    registry=REGISTRY,
)
API_SECONDS = Histogram(
    "socrec_api_request_duration_seconds",
    "Time to answer a read API request, by route template (a computed list includes its scoring).",
    ["route"],
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)

_marks_lock = threading.Lock()
_marks: dict[str, float] = {}


def _age(name: str) -> float:
    """Seconds since the mark; 0 before the first one, so a starting worker is not 'stuck'."""
    with _marks_lock:
        t = _marks.get(name)
    return 0.0 if t is None else time.monotonic() - t


LAST_COMMIT_AGE = Gauge(
    "socrec_last_commit_age_seconds", "Seconds since the worker last committed offsets.", registry=REGISTRY
)
LAST_COMMIT_AGE.set_function(lambda: _age("commit"))
BATCH_AGE = Gauge(
    "socrec_batch_age_seconds", "Seconds since the worker last finished a micro-batch.", registry=REGISTRY
)
BATCH_AGE.set_function(lambda: _age("batch"))


def mark_commit() -> None:
    with _marks_lock:
        _marks["commit"] = time.monotonic()


def mark_batch() -> None:
    with _marks_lock:
        _marks["batch"] = time.monotonic()


def last_commit_age() -> float:
    return _age("commit")


def batch_age() -> float:
    return _age("batch")


def mark(name: str) -> None:
    """Record that ``name`` happened now (e.g. "lag": the lag gauge was refreshed; see health.py)."""
    with _marks_lock:
        _marks[name] = time.monotonic()


def mark_age(name: str) -> float | None:
    """Seconds since the mark, or None when it never happened (unlike ``_age``, which says 0)."""
    with _marks_lock:
        t = _marks.get(name)
    return None if t is None else time.monotonic() - t


_model_version: list[str] = []


def set_model_version(version: str) -> None:
    """Exactly one ``socrec_model_info`` series is 1: the version serving now."""
    for old in _model_version:
        if old != version:
            try:
                MODEL_INFO.remove(old)
            except KeyError:
                pass
    _model_version[:] = [version]
    MODEL_INFO.labels(version=version).set(1)


_stage_children: dict[str, Any] = {}


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a block into ``socrec_stage_duration_seconds{stage=name}`` (also on exceptions)."""
    child = _stage_children.get(name)
    if child is None:
        child = _stage_children[name] = STAGE_SECONDS.labels(stage=name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        child.observe(time.perf_counter() - t0)


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    """Current value of one series (tests and the demo's live view read metrics through this)."""
    return REGISTRY.get_sample_value(name, labels or {})

"""Liveness of a worker: is an agent stuck, and the HTTP answer a probe gets (``GET /healthz``);
and its readiness (``Readiness``, ``GET /readyz``): is its engine restored yet.

Why a separate decision and not just ``socrec_batch_age_seconds``: an idle worker (nothing to
read) must stay healthy however old its last batch is, and a starting one must not look stuck
before its first batch. Stuck means *input is pending but nothing finished for a while*:
pending = consumer lag (not yet fetched) + in-flight (fetched, not yet committed: in the
agent's buffer or batch) > 0, and no micro-batch completed for ``stuck_after_s`` (counted from
the later of the last batch and the start of monitoring). Lag alone misses an agent that
hangs after the consumer fetched everything (lag 0, 200 events stuck in its buffer). The
gauges are refreshed by a timer on the worker's event loop; when that refresh itself stops
for ``stuck_after_s``, the loop is blocked, which is stuck too. The route runs on the metrics server's own thread, so it
answers while the agent (or its engine) is frozen.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from socrec_online import metrics

__all__ = ["Health", "HealthCheck", "Readiness", "assess", "set_os_thread_name"]

Status = Literal["ok", "stuck"]


@dataclass(frozen=True)
class Health:
    status: Status
    reason: str
    pending: int
    seconds_since_progress: float
    batch_age_seconds: float | None
    commit_age_seconds: float | None
    lag_age_seconds: float | None
    stuck_after_seconds: float

    @property
    def http_status(self) -> int:
        return 200 if self.status == "ok" else 503

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


def assess(
    *,
    pending: float,
    seconds_since_progress: float,
    stuck_after_s: float,
    lag_age_s: float | None = None,
    batch_age_s: float | None = None,
    commit_age_s: float | None = None,
) -> Health:
    """The decision, pure: stuck = (pending > 0 and no progress for ``stuck_after_s``) or a stale lag reading."""
    status: Status = "ok"
    reason = "idle" if pending <= 0 else "processing"
    if pending > 0 and seconds_since_progress >= stuck_after_s:
        status = "stuck"
        reason = f"{int(pending)} events pending (lag + in flight) and no batch finished for {seconds_since_progress:.1f}s"
    elif lag_age_s is not None and lag_age_s >= stuck_after_s:
        status = "stuck"
        reason = f"event loop blocked: consumer lag not refreshed for {lag_age_s:.1f}s"
    return Health(
        status=status,
        reason=reason,
        pending=int(max(0.0, pending)),
        seconds_since_progress=round(seconds_since_progress, 3),
        batch_age_seconds=None if batch_age_s is None else round(batch_age_s, 3),
        commit_age_seconds=None if commit_age_s is None else round(commit_age_s, 3),
        lag_age_seconds=None if lag_age_s is None else round(lag_age_s, 3),
        stuck_after_seconds=stuck_after_s,
    )


def _total(gauge: Any) -> float:
    total = 0.0
    for fam in gauge.collect():
        for s in fam.samples:
            total += s.value
    return total


class HealthCheck:
    """Reads the worker's own metrics; the progress clock starts when this object is made."""

    def __init__(self, stuck_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after_s = stuck_after_s
        self._clock = clock
        self._started = clock()

    def __call__(self) -> Health:
        batch_age = metrics.mark_age("batch")
        since_start = self._clock() - self._started
        since_progress = since_start if batch_age is None else min(batch_age, since_start)
        lag_age = metrics.mark_age("lag")
        return assess(
            pending=_total(metrics.CONSUMER_LAG) + _total(metrics.CONSUMER_IN_FLIGHT),
            seconds_since_progress=since_progress,
            stuck_after_s=self.stuck_after_s,
            lag_age_s=None if lag_age is None else min(lag_age, since_start),
            batch_age_s=batch_age,
            commit_age_s=metrics.mark_age("commit"),
        )

    def http(self) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for ``GET /healthz``: 200 ok, 503 stuck."""
        h = self()
        return h.http_status, h.to_json()


class Readiness:
    """Readiness of a worker (``GET /readyz``): false until its engine is restored from its tables
    after the first recovery (before that, reads would answer from an empty engine), then true
    for good. Set on the event loop, read on the metrics server's thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()

    def set(self) -> None:
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def http(self) -> tuple[int, bytes]:
        """(HTTP status, JSON body): 200 ready, 503 recovering."""
        if self.ready:
            return 200, b'{"status": "ready"}'
        return 503, b'{"status": "recovering", "reason": "the engine is not restored from the tables yet"}'


def set_os_thread_name(name: str) -> None:
    """Name the calling OS thread (Linux, 15 bytes), so ``top -H``, py-spy and the liveness test find it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME

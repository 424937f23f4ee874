"""The worker's operational HTTP routes on its metrics server: ``/healthz``, ``/readyz`` and ``/debug/state``.

All run on the metrics server's thread, not the event loop, so a probe gets an answer while
the agent is stuck. ``/debug/state`` (off unless ``SOCREC_DEBUG_STATE_ROUTE``) hops onto the
event loop and takes the pipeline's batch lock, so it sees the state between two batches,
never half of one; it is what the reliability tests compare with their replay oracle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

import faust
import orjson

from socrec_online import ops_http
from socrec_online.health import HealthCheck, Readiness
from socrec_online.settings import Settings
from streams.tables import snapshot_tables

STATE_TIMEOUT_S = 30.0


def install_health_route(settings: Settings) -> HealthCheck:
    check = HealthCheck(settings.health_stuck_after_s)
    ops_http.add_route("/healthz", check.http)
    return check


def install_ready_route() -> Readiness:
    """``GET /readyz``: 503 until the returned flag is set (the pipeline's first restore), then 200."""
    readiness = Readiness()
    ops_http.add_route("/readyz", readiness.http)
    return readiness


async def state_dump(pipeline: Any) -> dict[str, Any]:
    """The worker's table state and engine counts, between batches (plain JSON data)."""
    async with pipeline.paused() as call:  # the last batch's table writes are done too
        tables = snapshot_tables(pipeline.tables)
        engine = await call(pipeline.engine.stats)
    return {
        "pid": os.getpid(),
        "tables": tables,
        "engine": engine,
        "batches": pipeline.batches,
        "restores": pipeline.restores,
        "deferred": pipeline.deferred,
        "owned": sorted(pipeline.owned_partitions()),  # the input partitions assigned now
        "shared": (
            {"records": pipeline.shared.records, "applied": pipeline.shared.applied}
            if getattr(pipeline, "shared", None) is not None
            else None
        ),
    }


def install_state_route(app: faust.App, pipeline: Any) -> None:
    """Serve ``GET /debug/state`` once the app's event loop runs."""

    @app.task
    async def _register_state_route() -> None:
        loop = asyncio.get_running_loop()

        def handler() -> tuple[int, bytes]:
            fut = asyncio.run_coroutine_threadsafe(state_dump(pipeline), loop)
            try:
                data = fut.result(STATE_TIMEOUT_S)
            except concurrent.futures.TimeoutError:
                fut.cancel()
                return 503, b'{"status": "busy", "reason": "no batch boundary within the timeout"}'
            return 200, orjson.dumps(data)

        ops_http.add_route("/debug/state", handler)

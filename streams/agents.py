"""The agent: one Faust agent over every input topic, feeding micro-batches to a handler.

One agent consumes every input topic as one stream of micro-batches (``take_events``), so a
batch that mixes items, follows and clicks is applied by the engine in one call, in order,
and every user it touches is scored once (``streams.pipeline.Pipeline``, the usual handler;
``streams.passthrough`` is the bench baseline). While the worker is behind, windows are merged
into bigger batches first (``streams.catchup``).

Failure policy: the handler dead-letters bad records itself; any exception that reaches the agent
is a bug or an infrastructure fault, so the agent crashes the worker (``CrashingSupervisor``)
instead of dying quietly, and at-least-once delivery replays the unacknowledged batch on restart
(the engine is idempotent: state.replayed, or event ids on a broker that loses its logs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from mode import CrashingSupervisor

from socrec_online import metrics
from socrec_online.settings import Settings
from streams.catchup import CatchUp
from streams.delivery import drop_past_holes
from streams.topics import Topics

log = logging.getLogger("socrec.streams")

Ack = Callable[[faust.types.EventT], Awaitable[Any]]


def register_agent(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    handler: Callable[[Sequence[Any]], Awaitable[None]],
    name: str,
    *,
    catchup: CatchUp | None = None,
    bind_acks: Callable[[Ack], None] | None = None,
) -> Any:
    """One agent over every input topic, feeding micro-batches to ``handler``.

    ``catchup``: merge windows while behind (only the engine gains from bigger batches: each touched
    user is scored once per batch). ``bind_acks``: told the stream's ack once the agent starts (the
    pipeline releases events whose acks it held with it).
    """

    async def process(stream: faust.StreamT) -> None:
        if bind_acks is not None:
            bind_acks(stream.ack)
        flusher = (
            asyncio.ensure_future(catchup.run(handler, stream.ack, asyncio.current_task()))
            if catchup is not None
            else None
        )
        try:
            windows = cast(faust.Stream, stream).take_events(  # StreamT does not declare take_events
                settings.batch_max_events, within=settings.batch_max_seconds
            )
            async for window in windows:
                window = drop_past_holes(app.consumer, window)  # streams/delivery.py: read again in order
                if not window:
                    continue
                if catchup is not None and catchup.hold(window):
                    continue  # behind: merge the next window in before the engine sees it
                batch, merged = catchup.release(window) if catchup is not None else (window, [])
                try:
                    await handler(batch)
                except BaseException:
                    # take_events acks the whole buffer in a ``finally`` even when the batch failed or
                    # was cancelled (SIGTERM mid-batch), and the shutdown then commits those offsets:
                    # the batch would be lost. One extra reference per event keeps them uncommitted,
                    # so the restart replays them (the engine is idempotent: state.replayed).
                    for ev in batch:
                        ev.message.incref()
                    raise
                for ev in merged:  # the references ``hold`` took (the handler holds its own until delivered)
                    await stream.ack(ev)
        except BaseException as exc:
            failed = catchup.failed if catchup is not None else None
            error = failed if failed is not None and isinstance(exc, asyncio.CancelledError) else exc
            if isinstance(error, Exception):
                metrics.AGENT_ERRORS.labels(agent=name).inc()
                log.error("agent %s failed; crashing the worker so it restarts and replays: %r", name, error)
            if error is not exc:
                raise error from None
            raise
        finally:
            if flusher is not None:
                flusher.cancel()

    process.__name__ = name
    process.__qualname__ = name
    return app.agent(
        topics.inputs,
        name=name,
        concurrency=1,
        supervisor_strategy=CrashingSupervisor,
    )(process)

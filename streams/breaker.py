"""The breaker: one micro-batch the engine keeps failing on must not stop the worker for good.

Without it, an exception from the engine crashes the worker, at-least-once delivery replays the
same batch after the restart, and the engine fails again: one poison event is a crash loop.

What it does: a failed batch is retried in this process, after rebuilding the engine from the
tables (a failed call may have left the engine half-applied), up to ``breaker_failures`` times
in all. Then it trips: the batch's events are applied one by one, and each that fails alone is
given back to the caller as dead (reason ``processing_failed`` with the error's text), while
the others are applied and their outputs merged. The retries happen in the process that saw
the failures, so nothing about them needs to outlive a crash: no store of failing offsets, no
state in the changelog. A restart in the middle (kill -9) starts the count over, which costs at
most ``breaker_failures`` more attempts.

Data or infrastructure: an event that fails alone while the engine answers an empty batch (the
probe, after a rebuild) is data. When the rebuild or the probe fails too, or every event of a
batch of two or more fails alone, the fault is not in the events (the engine process died, the
machine is out of memory): the last error is raised and the worker crashes loudly, as before.
Changelog writes are not retried here: :func:`streams.tables.settle` retries them and a
refusal it cannot get past is an infrastructure error (values are bounded so that a refusal is
never the data's fault).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from socrec_online import metrics
from socrec_online.events import Event
from socrec_online.service.state import Position

log = logging.getLogger("socrec.breaker")

Item = tuple[Event, Position | None]
"""An event and where it was read (``Engine.learn_many``'s positions)."""
Step = Callable[[list[Item]], Awaitable[dict[str, Any]]]
Rebuild = Callable[[Mapping[str, Mapping[str, Any]]], Awaitable[object]]


def error_text(exc: BaseException) -> str:
    """The first line of the error, for a dead letter (a remote engine's carries its traceback)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def merge_into(total: dict[str, Any], part: Mapping[str, Any], index: int) -> None:
    """Add the result of ``engine.step([events[index]])`` to ``total`` (indices made the batch's)."""
    total["rejected"].extend([index, reason, detail] for _, reason, detail in part.get("rejected", ()))
    for name, kv in (part.get("table_updates") or {}).items():
        total["table_updates"].setdefault(name, {}).update(kv)  # later values are newer: full values
    total["payloads"].extend(part.get("payloads") or ())
    total["applied"] += int(part.get("applied") or 0)
    total["duplicates"] += int(part.get("duplicates") or 0)
    total["model_version"] = part.get("model_version", total["model_version"])


class Breaker:
    """Runs the engine's step on a batch with retries, then event by event (see the module doc)."""

    def __init__(self, failures: int, step: Step, rebuild: Rebuild) -> None:
        self.failures = failures
        self._step = step
        self._rebuild = rebuild
        self.trips = 0

    async def run(self, events: Sequence[Item]) -> tuple[dict[str, Any], list[tuple[int, str]]]:
        """(the step's result for ``events``, [(index, error text)] of the events that failed alone)."""
        batch = list(events)
        error: Exception | None = None
        for attempt in range(1, self.failures + 1):
            if attempt > 1:
                await self._rebuild({})
            try:
                return await self._step(batch), []
            except Exception as exc:  # noqa: BLE001 - counted; data or infrastructure decided below
                error = exc
                log.warning(
                    "engine failed on a batch of %d events (%d/%d): %s",
                    len(batch), attempt, self.failures, error_text(exc),
                )  # fmt: skip
        assert error is not None
        if not batch:
            raise error  # no event to blame
        return await self._one_by_one(batch, error)

    async def _one_by_one(
        self, batch: list[Item], error: Exception
    ) -> tuple[dict[str, Any], list[tuple[int, str]]]:
        self.trips += 1
        metrics.BREAKER_TRIPS.inc()
        log.error("breaker tripped: applying %d events one by one after %r", len(batch), error)
        total = self._empty()
        failed: list[tuple[int, str]] = []
        await self._rebuild({})
        for i, ev in enumerate(batch):
            try:
                part = await self._step([ev])
            except Exception as exc:  # noqa: BLE001 - this event alone: data, unless the probe fails
                await self._rebuild(total["table_updates"])  # back to the tables plus what applied
                await self._probe(exc)
                failed.append((i, error_text(exc)))
                continue
            merge_into(total, part, i)
        if len(batch) > 1 and len(failed) == len(batch):
            log.error("every event of the batch failed alone: not the data's fault")
            raise error
        return total, failed

    async def _probe(self, error: Exception) -> None:
        """An empty batch must go through, or the engine itself is broken: raise ``error``."""
        try:
            await self._step([])
        except Exception as exc:
            log.error("engine fails on an empty batch too (%r): infrastructure", exc)
            raise error from exc

    @staticmethod
    def _empty() -> dict[str, Any]:
        return {
            "rejected": [], "table_updates": {}, "payloads": [], "applied": 0, "duplicates": 0,
            "model_version": None,
        }  # fmt: skip

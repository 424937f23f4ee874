"""Read again a changelog partition whose recovery stopped short of its end.

Why: Faust hands a fetched record on only while the flow is active and the record's partition is
among the consumer's active ones at that moment; otherwise the record is dropped while the Kafka
client's position has already moved past it. Input partitions are read again in that case
(``streams/delivery.py``); a changelog partition under recovery is not, and recovery then waits
forever for an offset it will never be given (the worker never becomes ready, logging "No event
received for active tp" over and over: seen after a SIGTERM restart on Apache Kafka).

So, while tables recover, every ``CHECK_S``: a changelog partition with records still to read whose
recovered offset has not moved for ``STALL_S`` is sought back to the offset after the last record
recovery applied. Records read twice are skipped by Faust's recovery (it applies an offset once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery

log = logging.getLogger("socrec.recovery")
CHECK_S = 5.0
STALL_S = 15.0


@dataclass
class StallDetector:
    """Which partitions made no recovery progress for ``stall_s`` seconds while records remain."""

    stall_s: float = STALL_S
    _seen: dict[Any, tuple[int, float]] = field(default_factory=dict)

    def stalled(self, offsets: Mapping[Any, int], remaining: Mapping[Any, int], now: float) -> dict[Any, int]:
        """``offsets``: last applied offset per partition (-1: none yet); ``remaining``: records still
        to read. Returns partition -> offset to read again from, and restarts its clock."""
        out: dict[Any, int] = {}
        for tp, left in remaining.items():
            offset = offsets.get(tp, -1)
            if left <= 0:
                self._seen.pop(tp, None)
                continue
            last = self._seen.get(tp)
            if last is None or last[0] != offset:
                self._seen[tp] = (offset, now)
            elif now - last[1] >= self.stall_s:
                out[tp] = offset + 1
                self._seen[tp] = (offset, now)
        return out

    def reset(self) -> None:
        self._seen.clear()


def table_recovery(app: faust.App) -> Recovery:
    """The app's table recovery. Faust types ``App.tables`` as the abstract ``TableManagerT``, which
    does not declare ``recovery``; its concrete manager (the default ``conf.TableManager``) does."""
    tables = app.tables
    if not isinstance(tables, TableManager):
        raise TypeError(f"the recovery guard needs faust's TableManager, not {type(tables).__name__}")
    return tables.recovery


def register_recovery_guard(app: faust.App, stall_s: float = STALL_S) -> StallDetector:
    """Check the app's table recovery on a timer; seek stalled changelog partitions back."""
    detector = StallDetector(stall_s)

    @app.timer(CHECK_S)
    async def _recovery_guard() -> None:
        recovery = table_recovery(app)
        if not recovery.in_recovery:
            detector.reset()
            return
        loop_time = app.loop.time()
        again = detector.stalled(recovery.active_offsets, recovery.active_remaining(), loop_time)
        for tp, offset in again.items():
            log.warning(
                "recovery of %s[%d] made no progress for %.0fs with records left: reading again from %d",
                tp.topic, tp.partition, stall_s, offset,
            )  # fmt: skip
            await app.consumer.seek(tp, max(0, offset))

    return detector

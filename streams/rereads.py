"""Each input record is handled once per worker process, however often the consumer hands it over.

The consumer reads records again by design: a rebalance seeks every partition back to its committed
offset, and :mod:`streams.delivery` seeks back to close holes. Kafka commits lag the work (acks are
held until a batch's outputs are delivered, interactions wait for their items), so a record handled
a moment ago may come again. State updates are idempotent on event ids, but dead letters and
recommendations are not: without this, a malformed record re-read after a rebalance was
dead-lettered twice.

:class:`HandledMarks` keeps, per input partition, the run of offsets ``[low, next)`` this process
handled one after another: applied, dead-lettered, diverted to its owner, or held for its item. A
record inside the run is dropped; any other is handled, and one that does not extend the run
(a jump past a gap, or a record below it: the consumer sought back to a commit below the first
record it handed over) starts a new run, so nothing is dropped that this process did not handle
(an older run forgotten costs at most a repeat, never a loss). A held interaction the pipeline
forgets (a restore clears the held list: its record is read again) is let through once more by
:meth:`HandledMarks.forget`. Marks of partitions no longer assigned are
dropped (:meth:`HandledMarks.retain`): the revoking rebalance committed what was handled, and the
next owner's work is not this process's. Memory: one int per assigned partition, plus the held
records forgotten at a restore until they come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import faust

from socrec_online import metrics


def _tp(message: Any) -> tuple[str, int]:
    return (message.topic, message.partition)


class HandledMarks:
    """Per input partition: the run of offsets this process handled (see the module)."""

    def __init__(self) -> None:
        self._low: dict[tuple[str, int], int] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._again: dict[tuple[str, int], set[int]] = {}  # forgotten inside the run: let through

    def fresh(self, batch: Sequence[faust.types.EventT]) -> list[faust.types.EventT]:
        """The records of ``batch`` not handled yet (the others are counted as re-reads); marks
        them handled."""
        out: list[faust.types.EventT] = []
        for fe in batch:
            msg = fe.message
            tp = _tp(msg)
            offset = msg.offset
            nxt = self._next.get(tp)
            if nxt is not None and self._low[tp] <= offset < nxt:
                again = self._again.get(tp)
                if again is None or offset not in again:
                    metrics.INPUT_REREADS.labels(topic=msg.topic).inc()
                    continue
                again.discard(offset)
                if not again:
                    del self._again[tp]
            elif offset == nxt:
                self._next[tp] = offset + 1
            else:  # first, past a gap, or below the run: a new run
                self._low[tp], self._next[tp] = offset, offset + 1
                self._again.pop(tp, None)
            out.append(fe)
        return out

    def forget(self, records: Iterable[tuple[str, int, int]]) -> None:
        """(topic, partition, offset) of records handled but dropped unapplied (held interactions
        a restore forgets): when the consumer hands them over again, they are handled again."""
        for topic, partition, offset in records:
            tp = (topic, partition)
            if self._low.get(tp, offset + 1) <= offset < self._next.get(tp, offset):
                self._again.setdefault(tp, set()).add(offset)

    def reset(self, tp: Any) -> None:
        """Forget ``tp``'s run (a Faust TP): its log went backwards (a broker that lost its data), so
        its offsets name other records now (``streams.offsets_guard``)."""
        key = (tp.topic, tp.partition)
        self._next.pop(key, None)
        self._low.pop(key, None)
        self._again.pop(key, None)

    def retain(self, assigned: Iterable[Any]) -> None:
        """Keep the marks of the partitions in ``assigned`` (Faust TPs) only."""
        keep = {(tp.topic, tp.partition) for tp in assigned}
        for tp in [tp for tp in self._next if tp not in keep]:
            del self._next[tp], self._low[tp]
            self._again.pop(tp, None)

    def __len__(self) -> int:
        return len(self._next)

"""Catch-up batching: bigger engine batches while the worker is behind its inputs (``CatchUp``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from socrec_online.settings import Settings

MIN_CATCHUP_WINDOW = 32
"""Smaller windows never start a merge: a backlog fills a 20 ms window with 50-256 events."""


class CatchUp:
    """Bigger engine batches while the worker is behind its inputs, the usual window when it is not.

    Why: the engine scores every user a batch touches once, so a backlog drained in 20 ms windows
    scores the same users again and again (a 4x bigger batch publishes about half the messages for
    the same events), and every message costs the worker and the broker too.

    Behind means at least ``backlog`` records wait in Kafka past what the worker has read: the sum,
    over every input partition read so far, of its highwater (aiokafka's value from the last fetch
    response: no request) minus the last offset taken. ``backlog`` must exceed ``max_events``
    (Settings refuses otherwise), or merging sustains itself at a live rate the usual windows keep
    up with: one merged batch waits up to ``max_s`` and then takes ``max_events / rate`` to process,
    and the records arriving meanwhile are themselves a "backlog" that starts the next merge. With
    256 vs 1,024 at 500 events/s every batch was merged and latency settled at 1-2 s instead of
    ~0.15 s. Past ``max_events`` waiting records, the oldest is already later than one merged batch
    takes, so merging only shortens the lag. Once started, a merge reads on while ``max_events // 4``
    records wait (up to ``max_events`` / ``max_s``); only starting one needs ``backlog``.

    A held window keeps one extra reference per event: ``take_events`` acknowledges it when it
    moves on, and its offsets must not be committed before the merged batch is delivered. Held
    events never wait for a next window that may not come (the input drained, or a rebalance
    stopped the flow and waits for every started event to be acknowledged): ``run`` hands them to
    the handler once they are ``max_s`` old.
    """

    def __init__(
        self,
        settings: Settings,
        highwater: Callable[[Any], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backlog = settings.batch_catchup_backlog
        self.max_events = settings.batch_catchup_max_events
        self.max_s = settings.batch_catchup_max_seconds
        self._highwater = highwater
        self._clock = clock
        self._read: dict[Any, int] = {}  # partition -> last offset taken (latest window wins: seeks too)
        self._held: list[faust.types.EventT] = []
        self._since = 0.0
        self._merged_last = False  # the last batch handed over was a merge: still catching up, maybe
        self.failed: BaseException | None = None

    def note(self, window: Sequence[faust.types.EventT]) -> None:
        """Move the read position to ``window`` (every window, held or not: a stale position would
        count records already handled as waiting)."""
        read = self._read
        for ev in window:
            m = ev.message
            read[m.tp] = m.offset  # a window holds each partition's records in offset order

    def waiting(self) -> int:
        """Input records still in Kafka past the read position, over every partition read so far."""
        waiting = 0
        for tp, offset in list(self._read.items()):
            try:
                hw = self._highwater(tp)
            except Exception:  # noqa: BLE001 - revoked: no longer this worker's backlog
                del self._read[tp]
                continue
            if hw is not None:
                waiting += max(0, int(hw) - offset - 1)
        return waiting

    def hold(self, window: Sequence[faust.types.EventT]) -> bool:
        """True: the window joins the held events (one reference each) and the batch grows on."""
        if self.backlog <= 0:
            return False
        self.note(window)
        if len(self._held) + len(window) >= self.max_events:
            return False
        if not self._held and not self._merged_last and len(window) < MIN_CATCHUP_WINDOW:
            # A live stream's window (500 ev/s: ~10 events): the usual path. Right after a merge the
            # first window is small too (the loop was busy publishing), yet the backlog is still there.
            return False
        now = self._clock()
        if self._held and now - self._since >= self.max_s:
            return False
        if self.waiting() < (self.max_events // 4 if self._held else self.backlog):
            # Started, a merge reads the lag down (hysteresis): stopping as soon as it dips under
            # ``backlog`` gave 30-200-event merges that pinned a saturated worker's lag at ``backlog``.
            return False
        if not self._held:
            self._since = now
        for ev in window:
            ev.message.incref()
        self._held.extend(window)
        return True

    def release(
        self, window: Sequence[faust.types.EventT]
    ) -> tuple[Sequence[faust.types.EventT], list[faust.types.EventT]]:
        """(the batch to handle: held events then this window, the held events to ack after it)."""
        self._merged_last = bool(self._held)
        if not self._held:
            return window, []
        held, self._held = self._held, []
        return [*held, *window], held

    async def run(
        self,
        handler: Callable[[Sequence[Any]], Awaitable[None]],
        ack: Callable[[faust.types.EventT], Awaitable[Any]],
        agent: asyncio.Task[Any] | None,
    ) -> None:
        """Background: deliver held events that waited ``max_s``; a failure crashes the agent."""
        while True:
            await asyncio.sleep(self.max_s / 4)
            if not self._held or self._clock() - self._since < self.max_s:
                continue
            held, self._held = self._held, []
            try:
                await handler(held)
            except BaseException as exc:
                for ev in held:
                    ev.message.incref()  # never committed: replayed after the restart
                if isinstance(exc, Exception) and agent is not None:
                    self.failed = exc
                    agent.cancel()  # the agent re-raises ``failed``: the worker crashes and replays
                    return
                raise
            for ev in held:
                await ack(ev)

"""Is an item published on another worker's items partition still on its way to this worker?

Such an item reaches this worker only through the shared-state mirror (``streams.mirror``): its
owner consumes it, applies it and writes its changelog, and this worker's mirror reads that
changelog and applies it between batches. Under load that takes longer than the
``unknown_item_grace_s`` a click on the item is held for, and the click was dead-lettered as
unknown_item although its item was in the log. So the click's wait goes on while either

(a) the group's committed offset of that items partition is below where the partition ended
    when the click was held (its owner has not applied everything published by then), or
(b) this worker's mirror has not read the items changelog partition up to where it ended once (a)
    was clear, or has read the item's value but not applied it yet.

(a) compares with the end as of the hold, not the moving end, so under a steady flow of new items
a never-published item is still dead-lettered about a commit interval after its grace.

The offsets come from the broker in a background task (a few rounds a second, only while a held
click asks); :meth:`RemoteItems.on_way` reads the rounds kept, so the batch path never waits on
the broker.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs, restarting
from streams.mirror import StateMirror

log = logging.getLogger("socrec.remote_items")
POLL_S = 0.2
"""A round of offsets at most this often, while a held click asks."""
ASKED_FOR_S = 2.0
"""Rounds go on this long after the last question (the reader's consumer stays connected)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Round:
    """The offsets of one round, per partition; each was asked for after ``at`` (monotonic)."""

    at: float
    items_end: dict[int, int]
    committed: dict[int, int]  # -1: the group committed nothing there yet
    changelog_end: dict[int, int]  # asked for after ``committed`` had answered


class RemoteItems:
    """The rounds of offsets of the last ``unknown_item_max_wait_s``, and the verdict they give."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        items_topic: str,
        changelog_topic: str,
        read_to: Callable[[int], int | None],
        is_pending: Callable[[str], bool],
    ) -> None:
        """``read_to(p)``: where the mirror's reader is on changelog partition p (None: not reading);
        ``is_pending(item_id)``: the mirror read the item's value but did not apply it yet."""
        self.settings = settings
        self.group_id = group_id
        self.items_topic = items_topic
        self.changelog_topic = changelog_topic
        self.read_to = read_to
        self.is_pending = is_pending
        self.rounds: list[Round] = []
        self._ats: list[float] = []  # the rounds' times, for bisect
        self._asked = asyncio.Event()
        self._asked_until = 0.0

    def on_way(self, partition: int, item_id: str, since: float) -> bool:
        """True while ``item_id``, carried by items ``partition``, may still reach the engine from a
        click held since ``since`` (monotonic); False once the owner and the mirror are past it."""
        self._asked_until = time.monotonic() + ASKED_FOR_S
        self._asked.set()
        first = bisect.bisect_left(self._ats, since)
        if first == len(self.rounds):
            return True  # no round began after the hold yet
        end = self.rounds[first].items_end.get(partition)
        if end is None:
            return True
        caught_up = next((r for r in self.rounds[first:] if r.committed.get(partition, -1) >= end), None)
        if caught_up is None and end > 0:
            return True  # (a): the owner has not committed past the end as of the hold
        target = (caught_up or self.rounds[first]).changelog_end.get(partition)
        at = self.read_to(partition)
        if target is None or at is None or at < target:
            return True  # (b): the mirror has not read the owner's changelog that far
        return self.is_pending(item_id)

    def keep(self, r: Round) -> None:
        """Add a round; forget the ones older than any click can wait."""
        horizon = r.at - self.settings.unknown_item_max_wait_s - 1.0
        drop = bisect.bisect_left(self._ats, horizon)
        del self.rounds[:drop], self._ats[:drop]
        self.rounds.append(r)
        self._ats.append(r.at)

    async def run(self) -> None:
        """The background task: rounds while held clicks ask (restarted after a failure; the clicks
        wait meanwhile, bounded by their max wait)."""
        await restarting(self.rounds_while_asked, log, "remote items' offsets reader", "remote_items")

    async def rounds_while_asked(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        await self._asked.wait()  # a worker whose clicks never wait on another's items never connects
        # In the group (for its committed offsets) but never subscribed: it does not join it.
        consumer = AIOKafkaConsumer(**kafka_client_kwargs(self.settings), group_id=self.group_id, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = range(self.settings.partitions)
            items = {p: TopicPartition(self.items_topic, p) for p in parts}
            changelog = {p: TopicPartition(self.changelog_topic, p) for p in parts}
            while True:
                if time.monotonic() > self._asked_until:
                    self._asked.clear()
                    await self._asked.wait()
                t0 = time.monotonic()
                self.keep(await self.round(consumer, items, changelog, t0))
                await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - t0)))
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    @staticmethod
    async def round(consumer: Any, items: dict[int, Any], changelog: dict[int, Any], at: float) -> Round:
        """One round: the items partitions' ends, then the group's commits, then the changelog's ends."""
        items_end = await consumer.end_offsets(list(items.values()))
        committed = {}
        for p, tp in items.items():
            off = await consumer.committed(tp)
            committed[p] = -1 if off is None else int(off)
        changelog_end = await consumer.end_offsets(list(changelog.values()))
        return Round(
            at,
            {p: int(items_end[tp]) for p, tp in items.items()},
            committed,
            {p: int(changelog_end[tp]) for p, tp in changelog.items()},
        )


def register_remote_items(app: Any, settings: Settings, mirror: StateMirror) -> RemoteItems:
    """The view for the app's consumer group, its items topic and ``mirror``, read by an app task."""
    from streams.topics import topic_name

    remote = RemoteItems(
        settings,
        app.conf.id,
        topic_name(settings, "items"),
        mirror.changelog_of("items"),
        lambda p: mirror.read_to("items", p),
        lambda item_id: mirror.is_pending("items", item_id),
    )

    @app.task
    async def _remote_items() -> None:
        await remote.run()

    return remote

"""Records on the wrong partition go to their owner's: any client, any partitioner, one state.

The worker keeps each user's (each item's) table state in the partition the default murmur2
partitioner gives its id (``socrec_online.partitioning``; ``streams.tables``), and a record is
applied by the worker that reads it. A producer on another partitioner (confluent-kafka's
default is CRC32 of the key) or with no key puts a user's events elsewhere, so with two workers
that user's state would be written by both and parts of it lost (social reasons went missing).

So before the engine sees a batch, a decoded event read from a partition other than
``owner_partition(key_of(event))`` is not applied here: its record is produced again, as it was
(key, value, timestamp and headers, plus ``socrec-rerouted-from: topic/partition/offset``), to
the owner partition of the same topic on the output producer, and counted in
``socrec_misrouted_total{topic}``. The pipeline flushes that producer before it acknowledges the
batch, so the original's offset is never committed before its copy is in Kafka; a crash in
between re-routes it again (the engine is idempotent on ``event_id``). The copy is applied when
read from the owner partition, by whichever worker owns it.

Routing is by the id in the value, which ``check_key`` has already matched with a non-null key:
a record without a key is routed too (state is keyed by that id, whatever the producer chose).
A record that was re-routed once and still looks misrouted (workers configured with different
partition counts) is applied where it is, with a warning, so it can never circle. Per-key order
holds among the records of one partitioner; a key produced through two partitioners at once has
no order between them, as in Kafka itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from socrec_online import metrics
from socrec_online.events import Event, key_of
from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.origin import Origin
from streams.output import OutputProducer
from streams.topics import topic_name

log = logging.getLogger("socrec.routing")
REROUTED_FROM = "socrec-rerouted-from"


def headers_of(message: Any) -> list[tuple[str, bytes]]:
    """A Faust message's headers as (name, bytes) pairs (Faust may hand a mapping or a list)."""
    headers = getattr(message, "headers", None) or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs]


class Router:
    """Splits a decoded batch into what this partition owns and what goes to another partition."""

    def __init__(self, settings: Settings, out: OutputProducer) -> None:
        self.settings, self.out = settings, out

    def split(
        self, events: Sequence[Event], origins: Sequence[Origin]
    ) -> tuple[list[Event], list[Origin], list[tuple[Origin, int]]]:
        """(events to apply here, their origins, [(origin, owner partition)] to re-route)."""
        keep: list[Event] = []
        kept: list[Origin] = []
        away: list[tuple[Origin, int]] = []
        n = self.settings.partitions
        for ev, origin in zip(events, origins, strict=True):
            owner = owner_partition(key_of(ev), n)
            if owner == origin.partition:
                keep.append(ev)
                kept.append(origin)
            elif any(k == REROUTED_FROM for k, _ in headers_of(self._message(origin))):
                log.warning(
                    "%s/%d/%d was re-routed already and its owner is partition %d: applied here "
                    "(do all workers use the same SOCREC_PARTITIONS?)",
                    origin.topic, origin.partition, origin.offset, owner,
                )  # fmt: skip
                keep.append(ev)
                kept.append(origin)
            else:
                away.append((origin, owner))
        return keep, kept, away

    async def reroute(self, away: Sequence[tuple[Origin, int]]) -> None:
        """Produce each record again to its owner partition (delivered by the pipeline's flush)."""
        for origin, owner in away:
            message = self._message(origin)
            ts = getattr(message, "timestamp", None)
            here = f"{origin.topic}/{origin.partition}/{origin.offset}".encode()
            await self.out.send_to(
                topic_name(self.settings, origin.topic),
                owner,
                origin.key,
                origin.raw,
                int(ts * 1000) if ts else None,
                [*headers_of(message), (REROUTED_FROM, here)],
            )
            metrics.MISROUTED.labels(topic=origin.topic).inc()

    async def divert(self, events: list[Event], origins: list[Origin]) -> tuple[list[Event], list[Origin]]:
        """Re-route the misrouted records of a decoded batch; returns the rest, in batch order."""
        keep, kept, away = self.split(events, origins)
        if away:
            await self.reroute(away)
        return keep, kept

    @staticmethod
    def _message(origin: Origin) -> Any:
        return getattr(origin.event, "message", None)

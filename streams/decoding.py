"""Kafka records to events: where each record came from, decoded and its key checked; a record that
fails either is a dead letter (the DESIGN.md record, keyed like the bad record, counted by reason)
and never stops the agent."""

from __future__ import annotations

from collections.abc import Sequence

import faust
import orjson

from socrec_online import metrics
from socrec_online.events import Event
from socrec_online.service.decode import (
    DeadLetterReason,
    DecodeError,
    check_key,
    dead_letter_record,
    decode_event,
)
from socrec_online.settings import Settings
from streams.origin import Origin
from streams.output import OutputProducer
from streams.topics import DEAD_LETTERS, base_name, topic_name


def origin_of(event: faust.types.EventT, settings: Settings) -> Origin:
    """Where a Faust event came from (its topic without the deployment's prefix), with its raw key
    and value as bytes: what a dead letter, the router and the acks need."""
    msg = event.message
    raw = event.value if isinstance(event.value, bytes | None) else bytes(event.value)
    key = event.key if isinstance(event.key, bytes | None) else str(event.key).encode()
    return Origin(base_name(settings, msg.topic), msg.partition, msg.offset, key, raw, event)


class DeadLetters:
    """Publishes dead letters: the DESIGN.md record, keyed like the bad record, counted by reason."""

    def __init__(self, out: OutputProducer, settings: Settings) -> None:
        self.out, self.settings = out, settings
        self.topic = topic_name(settings, DEAD_LETTERS)

    async def send(self, origin: Origin, reason: DeadLetterReason | str, error: str) -> None:
        record = dead_letter_record(
            origin.topic,
            origin.partition,
            origin.offset,
            reason,
            error,
            origin.raw,
            self.settings.dead_letter_payload_bytes,
        )
        await self.out.send(self.topic, origin.key, orjson.dumps(record))
        metrics.DEAD_LETTERS.labels(reason=str(reason)).inc()


def decode_batch(
    batch: Sequence[faust.types.EventT], settings: Settings
) -> tuple[list[Event], list[Origin], list[tuple[Origin, DecodeError]]]:
    """Decode every record and check its key (``check_key``: a mis-keyed event is a dead letter);
    good ones keep their batch order, bad ones keep their origin."""
    events: list[Event] = []
    origins: list[Origin] = []
    bad: list[tuple[Origin, DecodeError]] = []
    for fe in batch:
        origin = origin_of(fe, settings)
        try:
            ev = decode_event(origin.topic, origin.raw, settings)
            check_key(ev, origin.key)
        except DecodeError as exc:
            bad.append((origin, exc))
        else:
            events.append(ev)
            origins.append(origin)
    return events, origins, bad

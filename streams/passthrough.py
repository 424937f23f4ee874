"""The bench baseline: decode and validate each record, re-publish it as JSON (no engine)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import faust
import orjson

from socrec_online import metrics
from socrec_online.events import key_of, to_dict
from socrec_online.settings import Settings
from streams.decoding import DeadLetters, decode_batch
from streams.output import OutputProducer
from streams.topics import PASSTHROUGH, Topics, topic_name


class Passthrough:
    """The bench baseline: decode and validate each record, re-publish it as JSON (no engine)."""

    def __init__(self, settings: Settings, topics: Topics, out: OutputProducer) -> None:
        self.settings = settings
        self.topics = topics
        self.out = out
        self.topic = topic_name(settings, PASSTHROUGH)
        self.dead_letters = DeadLetters(out, settings)

    async def handle(self, batch: Sequence[faust.types.EventT]) -> None:
        with metrics.stage("decode"):
            events, origins, bad = decode_batch(batch, self.settings)
        for origin, exc in bad:
            metrics.EVENTS.labels(topic=origin.topic, outcome="dead_letter").inc()
            await self.dead_letters.send(origin, exc.reason, exc.detail)
        now = time.time()
        with metrics.stage("publish"):
            for ev, origin in zip(events, origins, strict=True):
                await self.out.send(self.topic, key_of(ev), orjson.dumps(to_dict(ev)))
                metrics.EVENTS.labels(topic=origin.topic, outcome="ok").inc()
                metrics.E2E_LATENCY.observe(max(0.0, now - ev.ts))
            await self.out.flush()
        metrics.mark_batch()

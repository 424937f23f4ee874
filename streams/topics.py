"""Every topic of DESIGN.md, declared once: names (with the prefix), roles, partitions.

Values travel as raw bytes (the agents validate them themselves, so a malformed record is
a dead letter instead of a Faust deserialization crash); keys are UTF-8 strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from socrec_online.events import INPUT_TOPICS
from socrec_online.settings import Settings

RECOMMENDATIONS = "recommendations"
DEAD_LETTERS = "dead-letters"
MODEL_UPDATES = "model-updates"
PASSTHROUGH = "passthrough"  # output of the pass-through bench agent only
OUTPUT_TOPICS: tuple[str, ...] = (RECOMMENDATIONS, DEAD_LETTERS, MODEL_UPDATES)
ALL_TOPICS: tuple[str, ...] = (*INPUT_TOPICS, *OUTPUT_TOPICS)


def topic_name(settings: Settings, base: str) -> str:
    return f"{settings.topic_prefix}{base}"


def base_name(settings: Settings, full: str) -> str:
    """``prod.clicks`` -> ``clicks`` (the name decode_event and the metrics speak)."""
    p = settings.topic_prefix
    return full[len(p) :] if p and full.startswith(p) else full


def required_topics(settings: Settings, *, passthrough: bool = False) -> dict[str, int]:
    """Full topic name -> partitions the worker needs (inputs are co-partitioned: same count)."""
    bases = (*INPUT_TOPICS, PASSTHROUGH, DEAD_LETTERS) if passthrough else ALL_TOPICS
    return {topic_name(settings, b): settings.partitions for b in bases}


@dataclass(frozen=True)
class Topics:
    inputs: faust.TopicT  # one Faust channel over every input topic (one agent, mixed batches)
    recommendations: faust.TopicT
    dead_letters: faust.TopicT
    model_updates: faust.TopicT
    passthrough: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def one(*bases: str) -> faust.TopicT:
        return app.topic(
            *(topic_name(settings, b) for b in bases),
            key_type=None,
            value_type=None,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            replicas=settings.replication_factor,
        )

    return Topics(
        inputs=one(*INPUT_TOPICS),
        recommendations=one(RECOMMENDATIONS),
        dead_letters=one(DEAD_LETTERS),
        model_updates=one(MODEL_UPDATES),
        passthrough=one(PASSTHROUGH),
    )

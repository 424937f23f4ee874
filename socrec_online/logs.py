"""Log set-up of the service processes: level and format from ``SOCREC_LOG_LEVEL`` / ``SOCREC_LOG_FORMAT``.

One dictConfig serves both our own start-up and Faust's worker (which replaces the root
logger's handlers when it starts), so the format chosen is the format of every line. At INFO
the Kafka client and Faust internals are held at WARNING: INFO then shows what an operator
reads (start-up, partition assignment, model swaps, dead-letter counts), DEBUG shows all.
The JSON format writes one object per line (``ts``, ``level``, ``logger``, ``message`` and
``exc`` for a traceback) for log shippers that parse it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["CounterDeltas", "JsonFormatter", "configure_logging", "describe_assignment", "logging_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines are internals (fetch sessions, coordinator, recovery progress).
QUIET_BELOW_DEBUG: tuple[str, ...] = ("aiokafka", "kafka", "faust", "mode")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (epoch seconds), level, logger, message, exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def logging_config(level: str, fmt: str = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for this level (DEBUG..ERROR) and format (text | json)."""
    level = level.upper()
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: expected text or json")
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    quiet = level if level in ("DEBUG", "WARNING", "ERROR", "CRITICAL") else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"socrec": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "socrec", "stream": "ext://sys.stderr"}
        },
        "loggers": {name: {"level": quiet} for name in QUIET_BELOW_DEBUG},
        "root": {"level": level, "handlers": ["stderr"]},
    }


def configure_logging(level: str, fmt: str = "text") -> None:
    """Apply :func:`logging_config` now (dictConfig consumes its dict: build a new one for Faust)."""
    logging.config.dictConfig(logging_config(level, fmt))


def describe_assignment(partitions: Iterable[tuple[str, int]]) -> str:
    """``clicks, likes: 0, 2; items: 1`` (topics grouped by their partition set), or ``none``."""
    by_topic: dict[str, set[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, set()).add(partition)
    groups: dict[tuple[int, ...], list[str]] = {}
    for topic in sorted(by_topic):
        groups.setdefault(tuple(sorted(by_topic[topic])), []).append(topic)
    if not groups:
        return "none"
    return "; ".join(f"{', '.join(topics)}: {', '.join(map(str, ps))}" for ps, topics in sorted(groups.items()))


class CounterDeltas:
    """What a labelled Prometheus counter gained per label value since the last :meth:`take`.

    The worker logs dead-letter counts from ``socrec_dead_letters_total`` this way: one summary
    line per interval instead of a line per refused record.
    """

    def __init__(self, counter: Any, label: str) -> None:
        self.counter = counter
        self.label = label
        self._seen: dict[str, float] = {}
        self.taken_at = time.monotonic()

    def _totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for family in self.counter.collect():
            for s in family.samples:
                if s.name.endswith("_total") and self.label in s.labels:
                    out[s.labels[self.label]] = out.get(s.labels[self.label], 0.0) + s.value
        return out

    def take(self) -> dict[str, int]:
        """{label value: increase} for the values that increased, largest first."""
        totals = self._totals()
        gained = {k: int(v - self._seen.get(k, 0.0)) for k, v in totals.items() if v > self._seen.get(k, 0.0)}
        self._seen = totals
        self.taken_at = time.monotonic()
        return dict(sorted(gained.items(), key=lambda kv: (-kv[1], kv[0])))

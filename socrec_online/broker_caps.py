"""What the broker in use can do, so the worker works around a defect only where it exists.

One object decides every broker-specific choice of the stream layer (``streams/app.py``,
``streams/pipeline.py``, ``streams/offsets_guard.py``, ``streams/output.py``): on Apache Kafka
none of the embedded broker's workarounds runs. Each ``False`` below names the defect of the
embedded Tansu (0.6, memory storage) that a workaround exists for:

- ``durable``: the log survives a broker restart. Tansu keeps it in memory, so a restart comes
  back empty under the consumers' positions (the offsets guard resumes such partitions), and
  replay is idempotent on event ids rather than exact on offsets.
- ``exact_log_end``: ListOffsets(latest) is the true log end. Tansu answers the start of the
  last record batch + 1, so changelog recovery would drop that batch's tail (changelog fences).
- ``prompt_fetch``: a fetch returns as soon as data is there. Tansu holds it for its whole max
  wait (a short fetch wait).
- ``prompt_join``: JoinGroup returns once the group has formed. Tansu holds it for half the
  session timeout (a short session timeout).
- ``idempotent_producer``: producer ids (idempotent, ordered retries). Tansu has none.
- ``transactions``: Kafka transactions. Tansu has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BrokerKind = Literal["kafka", "embedded"]

__all__ = ["APACHE_KAFKA", "EMBEDDED", "BrokerCapabilities", "BrokerKind", "capabilities"]


@dataclass(frozen=True)
class BrokerCapabilities:
    name: str
    durable: bool
    exact_log_end: bool
    prompt_fetch: bool
    prompt_join: bool
    idempotent_producer: bool
    transactions: bool

    @property
    def needs_offsets_guard(self) -> bool:
        return not self.durable

    @property
    def needs_changelog_fences(self) -> bool:
        return not self.exact_log_end

    @property
    def exact_replay(self) -> bool:
        """An input offset names one record for good (the log never restarts at 0 under the worker),
        so the worker passes each event's position and a replay is exact on offsets
        (``socrec_online.service.state.replayed``); on a broker that loses its logs the same offset
        names another record afterwards, and applied event ids decide instead."""
        return self.durable


APACHE_KAFKA = BrokerCapabilities(
    name="apache-kafka",
    durable=True,
    exact_log_end=True,
    prompt_fetch=True,
    prompt_join=True,
    idempotent_producer=True,
    transactions=True,
)
EMBEDDED = BrokerCapabilities(
    name="embedded",
    durable=False,
    exact_log_end=False,
    prompt_fetch=False,
    prompt_join=False,
    idempotent_producer=False,
    transactions=False,
)


def capabilities(kind: BrokerKind) -> BrokerCapabilities:
    return APACHE_KAFKA if kind == "kafka" else EMBEDDED

"""Start the broker the settings name: Apache Kafka by default, the embedded Tansu on request.

The CLI (``socrec broker``), the demo, the benchmarks and the tests all start their broker
through :func:`make_broker`, so ``SOCREC_BROKER`` switches every one of them at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self

from socrec_online.broker import EmbeddedBroker
from socrec_online.broker_caps import BrokerKind
from socrec_online.kafka_broker import ApacheKafkaBroker

__all__ = ["ManagedBroker", "make_broker"]


class ManagedBroker(Protocol):
    """What callers need of a broker child process, whichever broker it is."""

    name: str
    kind: BrokerKind
    version: str
    host: str
    port: int

    @property
    def bootstrap(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def is_running(self) -> bool: ...

    def log_tail(self, n: int = ...) -> str: ...


def make_broker(
    kind: BrokerKind,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: Path | None = None,
    log_path: Path | None = None,
) -> ManagedBroker:
    """A broker of ``kind``, not yet started. ``data_dir``: Apache Kafka's log (kept; a temporary
    folder removed at close when None); the embedded broker keeps nothing."""
    if kind == "embedded":
        return EmbeddedBroker(host=host, port=port, log_path=log_path)
    return ApacheKafkaBroker(host=host, port=port, data_dir=data_dir, log_path=log_path)

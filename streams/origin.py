"""Where a record came from: what the dead letters, the router and the acks need to know of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust


class Origin:
    """Where a record came from (for dead letters), what it carried, and its Faust event (for acks)."""

    __slots__ = ("event", "key", "offset", "partition", "raw", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        event: faust.types.EventT | None = None,
    ) -> None:
        self.topic, self.partition, self.offset, self.key, self.raw = topic, partition, offset, key, raw
        self.event = event

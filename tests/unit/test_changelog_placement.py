"""Changelog records are placed by the table itself, never by the producer's (possibly empty) metadata."""

from __future__ import annotations

from typing import Any

import faust

from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.tables import declare_tables


class _Topic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_soon(self, **kwargs: Any) -> object:
        self.sent.append(kwargs)
        return object()


def test_a_changelog_record_goes_to_its_keys_owner_partition_without_asking_the_producer() -> None:
    settings = Settings(partitions=6)
    app = faust.App("placement-test", broker="kafka://127.0.0.1:1")

    def no_metadata(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("'NoneType' object is not iterable")  # aiokafka before the topic's metadata

    app.producer.key_partition = no_metadata  # type: ignore[method-assign]
    table = declare_tables(app, settings, ["social"])["social"]
    topic = _Topic()
    table._changelog_topic = topic
    for key in ("u1", "user-2", "ü3", "42"):
        table.send_changelog(None, key, {"v": 1})
    assert [m["partition"] for m in topic.sent] == [owner_partition(k, 6) for k in ("u1", "user-2", "ü3", "42")]
    assert len(table.unsettled) == 4

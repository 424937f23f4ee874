"""The agent's decode step: a mis-keyed record becomes a dead letter with its origin, not state."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from socrec_online.events import Click, ItemPublished, to_dict
from socrec_online.settings import Settings
from streams.decoding import decode_batch


def record(topic: str, offset: int, key: bytes | None, value: dict[str, Any]) -> Any:
    """The parts of a Faust event that ``decode_batch`` reads."""
    message = SimpleNamespace(topic=topic, partition=2, offset=offset)
    return SimpleNamespace(message=message, key=key, value=orjson.dumps(value))


def test_mis_keyed_records_are_dead_lettered_as_wrong_key_and_the_rest_decoded() -> None:
    s = Settings()
    click = Click("c1", "ann", "i1", 1_700_000_000.0)
    item = ItemPublished("p1", "i1", 1_700_000_000.0, "jazz", author_id="ann")
    batch = [
        record("clicks", 10, b"ann", to_dict(click)),
        record("clicks", 11, b"bob", to_dict(Click("c2", "ann", "i1", 1_700_000_001.0))),  # another user's key
        record("items", 12, b"i1", to_dict(item)),
        record("items", 13, b"ann", to_dict(ItemPublished("p2", "i2", 1_700_000_000.0, "folk", "ann"))),
        record("clicks", 14, None, to_dict(Click("c3", "cy", "i1", 1_700_000_002.0))),  # no key: accepted
    ]
    events, origins, bad = decode_batch(batch, s)
    assert [e.event_id for e in events] == ["c1", "p1", "c3"]
    assert [o.offset for o in origins] == [10, 12, 14]
    assert [(o.topic, o.partition, o.offset, exc.reason.value) for o, exc in bad] == [
        ("clicks", 2, 11, "wrong_key"),
        ("items", 2, 13, "wrong_key"),
    ]

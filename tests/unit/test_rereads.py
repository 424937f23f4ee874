"""streams.rereads through streams.pipeline.Pipeline, without Kafka: a record the consumer hands over
again (a rebalance's seek back to the committed offset) writes no second dead letter and no second
recommendation; a held interaction a restore forgets is handled when it comes again (issue #19)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from _engine_texts import T0, TEXTS
from test_breaker import handle, pipeline, records

from socrec_online import metrics
from socrec_online.events import Click, ItemPublished
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings
from streams.rereads import HandledMarks

ITEMS = [ItemPublished(f"p{i}", f"i{i}", T0, TEXTS[i]) for i in range(4)]


def raw(topic: str, partition: int, offset: int, value: bytes, key: bytes = b"u1") -> Any:
    return SimpleNamespace(
        message=SimpleNamespace(topic=topic, partition=partition, offset=offset), key=key, value=value
    )


def rereads(topic: str) -> float:
    return metrics.INPUT_REREADS.labels(topic=topic)._value.get()


def test_a_record_read_again_is_dead_lettered_and_answered_once(encoder: Any) -> None:
    engine = Engine(Settings(device="cpu", unknown_item_grace_s=0), encoder)
    p, out, _ = pipeline(encoder, engine)
    handle(p, records(ITEMS))
    bad = [raw("clicks", 1, 5, b"{not json"), raw("likes", 0, 7, b'{"event_id": "x", "user_id": "u1"}')]
    good = records([Click("c1", "ann", "i0", T0 + 1)], start=9)
    before = rereads("clicks")
    handle(p, bad + good)
    sent = len(out.sent)
    assert len(out.dead_letters()) == 2 and sent > 2
    # a rebalance seeks back to the committed offset: the same records, then one new one
    handle(p, bad + good + records([Click("c2", "ann", "i1", T0 + 2)], start=10))
    dead = out.dead_letters()
    assert sorted((d["topic"], d["offset"], d["reason"]) for d in dead) == [
        ("clicks", 5, "bad_json"),
        ("likes", 7, "missing_field"),
    ]
    recs = [orjson.loads(v) for t, _, v in out.sent[sent:] if t == "recommendations"]
    assert [r["source_event_id"] for r in recs] == ["c2"]  # only the new click is answered
    assert rereads("clicks") == before + 2  # the bad click and the first good click


def test_a_held_interaction_forgotten_by_a_restore_is_handled_when_read_again(encoder: Any) -> None:
    s = Settings(device="cpu", unknown_item_grace_s=30, unknown_item_max_wait_s=60)
    engine = Engine(s, encoder)
    p, _, tables = pipeline(encoder, engine)
    handle(p, records(ITEMS))
    waiting = records([Click("w1", "ann", "i9", T0 + 1)], start=3)  # item i9 not published yet
    for fe in waiting:
        fe.message.incref = lambda: None
    handle(p, waiting)
    assert p.deferred == 1 and "ann" not in tables["activity"]
    asyncio.run(p.restore())  # a rebalance: held records are forgotten, the consumer reads them again
    assert p.deferred == 0
    handle(p, records([ItemPublished("p9", "i9", T0, TEXTS[4])], start=4))
    handle(p, waiting)  # read again: handled now, not dropped as a re-read
    assert list(tables["activity"]["ann"]["recent"]) == ["i9"]


def test_marks_are_per_partition_and_dropped_with_the_partition() -> None:
    marks = HandledMarks()
    a = [raw("t", 0, o, b"") for o in (3, 4)]
    b = [raw("t", 1, o, b"") for o in (0, 1)]
    assert marks.fresh(a + b) == a + b
    assert marks.fresh([raw("t", 0, 4, b""), raw("t", 1, 2, b"")])[0].message.offset == 2
    marks.forget([("t", 0, 3), ("t", 0, 9)])  # 9 was never handled: nothing to let through
    again = marks.fresh([raw("t", 0, 3, b""), raw("t", 0, 3, b"")])
    assert len(again) == 1  # once
    marks.retain([SimpleNamespace(topic="t", partition=1)])
    assert len(marks) == 1
    assert len(marks.fresh([raw("t", 0, 4, b"")])) == 1  # partition 0 left and came back: its commit rules


def test_records_below_the_first_one_handed_over_are_handled_not_dropped() -> None:
    """After an assignment the consumer may hand over a record past the commit, then seek back to the
    commit: what lies below the first record this process handled was never handled."""
    marks = HandledMarks()
    assert len(marks.fresh([raw("t", 0, o, b"") for o in (1400, 1401)])) == 2
    back = [raw("t", 0, o, b"") for o in range(1214, 1403)]  # sought back to the commit
    got = [fe.message.offset for fe in marks.fresh(back)]
    assert got == list(range(1214, 1403))  # all handled (1400-1401 again: a repeat, never a loss)
    assert marks.fresh([raw("t", 0, 1300, b"")]) == []  # inside the run now: a re-read
    # a jump past a gap starts a new run: the offsets skipped are not taken as handled
    assert len(marks.fresh([raw("t", 0, 1500, b"")])) == 1
    assert len(marks.fresh([raw("t", 0, 1450, b"")])) == 1


def test_a_partition_whose_log_went_backwards_is_handled_again_from_its_new_start() -> None:
    marks = HandledMarks()
    assert len(marks.fresh([raw("t", 0, o, b"") for o in range(5)])) == 5
    marks.reset(SimpleNamespace(topic="t", partition=0))  # the broker lost its data: offsets restart
    assert len(marks.fresh([raw("t", 0, o, b"") for o in range(3)])) == 3

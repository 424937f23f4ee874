"""streams.delivery.CommitBelowHeld on Faust's own consumer: a held record is never committed over."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from faust.types import TP, Message

from streams.delivery import harden_consumer

CLICKS = TP("clicks", 0)


def consumer(hardened: bool) -> Any:
    """A real Faust consumer (never started: acks and commit offsets are pure bookkeeping)."""
    app = faust.App(f"commit-test-{hardened}", broker="kafka://127.0.0.1:1")
    app.topic("clicks")
    if hardened:
        harden_consumer(app, {"clicks"})
    c = app.consumer
    app.topics._acking_topics.add("clicks")  # what the conductor does once the agent subscribes
    return c


def delivered(c: Any, offsets: range) -> list[Message]:
    msgs = [Message("clicks", 0, o, 0.0, 0, {}, b"k", b"v", None, tp=CLICKS) for o in offsets]
    for m in msgs:
        c.track_message(m)  # what a stream does when it hands the record out
    return msgs


@pytest.mark.parametrize("committed", [None, 5])
def test_a_held_record_at_the_commit_blocks_the_commit_until_acknowledged(committed: int | None) -> None:
    c = consumer(hardened=True)
    c._committed_offset[CLICKS] = committed
    first = 0 if committed is None else committed
    msgs = delivered(c, range(first, first + 6))
    for m in msgs[1:]:  # the first waits (its item is not published yet)
        c.ack(m)
    assert c._new_offset(CLICKS) is None
    c.ack(msgs[0])
    assert c._new_offset(CLICKS) == first + 6


def test_faust_alone_commits_over_the_held_record() -> None:
    """The reason for the mixin: drop it and the held record at the commit is skipped."""
    c = consumer(hardened=False)
    c._committed_offset[CLICKS] = 5
    msgs = delivered(c, range(5, 11))
    for m in msgs[1:]:
        c.ack(m)
    assert c._new_offset(CLICKS) == 11  # record 5 was never acknowledged


def test_other_topics_keep_fausts_rule() -> None:
    c = consumer(hardened=True)
    tp = TP("x-changelog", 0)
    app = c.app
    app.topics._acking_topics.add("x-changelog")
    c._committed_offset[tp] = 5
    msgs = [Message("x-changelog", 0, o, 0.0, 0, {}, b"k", b"v", None, tp=tp) for o in range(5, 8)]
    for m in msgs:
        c.track_message(m)
    for m in msgs[1:]:
        c.ack(m)
    assert c._new_offset(tp) == 8


def test_the_commit_pass_holds_the_partition_with_a_held_record_and_commits_the_others() -> None:
    """What Faust's commit calls: one pass over the unacknowledged records, per-partition answers."""
    c = consumer(hardened=True)
    other = TP("clicks", 1)
    c._committed_offset[CLICKS] = 5
    c._committed_offset[other] = 0
    held = delivered(c, range(5, 9))
    for m in held[1:]:
        c.ack(m)
    for o in range(3):
        m = Message("clicks", 1, o, 0.0, 0, {}, b"k", b"v", None, tp=other)
        c.track_message(m)
        c.ack(m)
    assert c._filter_committable_offsets({CLICKS, other}) == {other: 3}
    c.ack(held[0])
    assert c._filter_committable_offsets({CLICKS, other}) == {CLICKS: 9}  # `other`'s run was taken already

"""A changelog partition whose recovery stopped short is read again; one that progresses is left alone."""

from __future__ import annotations

from streams.recovery_guard import StallDetector


def test_a_partition_stuck_short_of_its_end_is_read_again_after_the_stall_time() -> None:
    d = StallDetector(stall_s=15.0)
    offsets = {"a": 41, "b": 10}
    remaining = {"a": 3, "b": 7}
    assert d.stalled(offsets, remaining, now=0.0) == {}
    assert d.stalled(offsets, remaining, now=14.0) == {}
    offsets["b"] = 12  # b moves on, a does not
    assert d.stalled(offsets, remaining, now=16.0) == {"a": 42}
    assert d.stalled(offsets, remaining, now=20.0) == {}  # the clock restarts after a seek
    assert d.stalled(offsets, remaining, now=31.5) == {"a": 42, "b": 13}


def test_a_finished_or_never_started_partition() -> None:
    d = StallDetector(stall_s=1.0)
    assert d.stalled({"a": 5}, {"a": 0}, now=0.0) == {}
    assert d.stalled({"a": 5}, {"a": 0}, now=10.0) == {}  # nothing left: never sought
    assert d.stalled({}, {"c": 4}, now=0.0) == {}
    assert d.stalled({}, {"c": 4}, now=2.0) == {"c": 0}  # nothing applied yet: from the start

"""Table values stay bounded: the event that would pass a bound is refused (state_too_large) and
changes nothing (issue #19, finding 4: an unbounded value fails its changelog write)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from _engine_texts import T0

from socrec_online import metrics
from socrec_online.events import Click, Comment, Follow, ItemPublished
from socrec_online.service.decode import DeadLetterReason
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings


def test_a_follow_past_max_following_is_refused_and_the_value_stays_within_the_bound(encoder: Any) -> None:
    s = Settings(device="cpu", max_following=3)
    e = Engine(s, encoder)
    r = e.learn_many([Follow(f"f{i}", "ann", f"u{i}", T0 + i) for i in range(3)])
    assert r.rejected == [] and len(r.table_updates["social"]["ann"]["following"]) == 3
    before = e.social["ann"].to_json()
    r = e.learn_many([Follow("f3", "ann", "u3", T0 + 3), Follow("f4", "bob", "u0", T0 + 4)])
    assert [(i, reason) for i, reason, _ in r.rejected] == [(0, DeadLetterReason.state_too_large)]
    assert set(r.table_updates["social"]) == {"bob"}  # ann's value is not rewritten: unchanged
    assert e.social["ann"].to_json() == before and "u3" not in e.users  # no state left behind
    # following someone already followed, or unfollowing, is never refused; then there is room again
    r = e.learn_many([Follow("f5", "ann", "u1", T0 + 5), Follow("f6", "ann", "u2", T0 + 6, undo=True)])
    assert r.rejected == []
    r = e.learn_many([Follow("f7", "ann", "u3", T0 + 7)])
    assert r.rejected == [] and len(e.social["ann"].following) == 3


def encoded(value: Any) -> int:
    return len(orjson.dumps(value))


def test_a_follow_that_would_pass_the_byte_bound_is_refused(encoder: Any) -> None:
    s = Settings(device="cpu", max_table_value_bytes=300_000, max_following=100_000)
    e = Engine(s, encoder)
    long_id = "t" * 250  # about 300 encoded bytes per follow
    r = e.learn_many([Follow(f"f{i}", "ann", f"{long_id}{i}", T0) for i in range(1200)])
    refused = [i for i, reason, _ in r.rejected if reason == DeadLetterReason.state_too_large]
    assert refused and refused == list(range(refused[0], 1200))  # the first ones fit, every later one is refused
    assert encoded(r.table_updates["social"]["ann"]) <= 300_000
    assert len(e.social["ann"].following) == refused[0]
    assert f"{long_id}{refused[0]}" not in e.users  # a refused follow leaves nothing behind


def test_an_activity_value_at_its_byte_bound_forgets_its_oldest_seen_items(encoder: Any) -> None:
    s = Settings(device="cpu", max_table_value_bytes=300_000, seen_per_user=100_000, recent_per_user=50)
    e = Engine(s, encoder)
    items = [f"{'i' * 200}{n}" for n in range(2000)]
    e.learn_many([ItemPublished(f"p{n}", item, T0, "jazz") for n, item in enumerate(items)])
    trimmed = metrics.STATE_TRIMMED.labels(table="activity")._value.get()
    r = e.learn_many([Click(f"c{n}", "ann", item, T0 + n) for n, item in enumerate(items)])
    assert r.rejected == []  # engagements are never refused for size
    value = r.table_updates["activity"]["ann"]
    assert encoded(value) <= 300_000
    assert items[-1] in value["seen"] and items[0] not in value["seen"]  # the oldest are forgotten
    assert list(value["recent"]) == items[-50:]  # recent engagements are kept
    assert metrics.STATE_TRIMMED.labels(table="activity")._value.get() > trimmed
    # restored from that value, the engine keeps it bounded as it grows
    e2 = Engine(s, encoder)
    e2.restore({"items": {i: st.to_json() for i, st in e.item_state.items()}, "activity": {"ann": value}})
    r = e2.learn_many([Comment("m1", "ann", items[5], T0 + 9999, "x" * 8000)])
    assert encoded(r.table_updates["activity"]["ann"]) <= 300_000


def test_settings_refuse_a_value_bound_the_decoders_limits_can_pass() -> None:
    with pytest.raises(ValueError, match="max_table_value_bytes"):
        Settings(max_table_value_bytes=100_000, max_text_bytes=100_000)

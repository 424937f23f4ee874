"""Table values stay bounded: the event that would pass a bound is refused (state_too_large) and
changes nothing (issue #19, finding 4: an unbounded value fails its changelog write)."""

from __future__ import annotations

from typing import Any

from _engine_texts import T0

from socrec_online.events import Follow
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

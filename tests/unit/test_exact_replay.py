"""Replay after a crash is exact whatever the number of events per key (issue #19, finding 3): a
value remembers, per input partition, the last offset applied and the held offsets below it, so
hundreds of events of one key read again change nothing, and a held event read again is applied."""

from __future__ import annotations

from typing import Any

from _engine_texts import T0, TEXTS

from socrec_online.events import Click, Comment, Follow, ItemPublished, Like
from socrec_online.service.engine import Engine
from socrec_online.service.state import Position
from socrec_online.settings import Settings

S = Settings(device="cpu", dedup_ids_per_key=64)
ITEMS = [ItemPublished(f"p{i}", f"i{i}", T0, TEXTS[i]) for i in range(6)]


def tables_of(engine: Engine) -> dict[str, dict[str, Any]]:
    return {
        "items": {k: v.to_json() for k, v in engine.item_state.items()},
        "social": {k: v.to_json() for k, v in engine.social.items()},
        "activity": {k: v.to_json() for k, v in engine.activity.items()},
    }


def hot_key_stream(n: int) -> list[Any]:
    """``n`` events of one user on one partition of each topic: likes toggle, comments accumulate."""
    out: list[Any] = []
    for k in range(n):
        item = f"i{k % 6}"
        kind = k % 4
        if kind == 0:
            out.append(Click(f"c{k}", "ann", item, T0 + k))
        elif kind == 1:
            out.append(Like(f"l{k}", "ann", item, T0 + k, undo=(k // 4) % 2 == 1))
        elif kind == 2:
            out.append(Comment(f"m{k}", "ann", item, T0 + k, "lovely" if k % 3 else "awful"))
        else:
            out.append(Follow(f"f{k}", "ann", f"u{k % 7}", T0 + k, undo=(k // 4) % 3 == 2))
    return out


def positions(events: list[Any]) -> list[Position | None]:
    topic = {Click: "clicks", Like: "likes", Comment: "comments", Follow: "follows"}
    return [(f"{topic[type(e)]}/2", 100 + n, ()) for n, e in enumerate(events)]


def test_hundreds_of_events_of_one_key_read_again_change_nothing(encoder: Any) -> None:
    events = hot_key_stream(400)
    at = positions(events)
    live = Engine(S, encoder)
    live.learn_many(ITEMS)
    for i in range(0, len(events), 50):
        live.learn_many(events[i : i + 50], positions=at[i : i + 50])
    before = tables_of(live)
    # a crash: the changelog holds everything, the commit nothing; a new worker replays all 400
    again = Engine(S, encoder)
    again.restore(before)
    res = again.learn_many(events, positions=at)
    assert res.duplicates == len(events) and res.applied == 0
    assert tables_of(again) == before
    # without positions only the last 64 event ids guard the value: the older ones apply twice
    blind = Engine(S, encoder)
    blind.restore(before)
    assert blind.learn_many(events).applied > 0


def test_a_held_event_read_again_after_a_crash_is_applied(encoder: Any) -> None:
    live = Engine(S, encoder)
    live.learn_many(ITEMS)
    # offset 10 (a click on i9, not published yet) is held; 11 is applied with 10 held below it
    live.learn_many([Click("c11", "ann", "i1", T0 + 2)], positions=[("clicks/0", 11, (10,))])
    crashed = tables_of(live)  # the worker dies before i9 arrives: 10 never applied
    again = Engine(S, encoder)
    again.restore(crashed)
    again.learn_many([ItemPublished("p9", "i9", T0, TEXTS[6])])
    res = again.learn_many(
        [Click("c10", "ann", "i9", T0 + 1), Click("c11", "ann", "i1", T0 + 2)],
        positions=[("clicks/0", 10, ()), ("clicks/0", 11, (10,))],
    )
    assert res.applied == 1 and res.duplicates == 1
    assert set(again.activity["ann"].recent) == {"i1", "i9"}
    assert again.activity["ann"].to_json()["applied"] == {"clicks/0": [11, []]}
    # and once more: both are duplicates now
    res = again.learn_many([Click("c10", "ann", "i9", T0 + 1)], positions=[("clicks/0", 10, ())])
    assert res.duplicates == 1

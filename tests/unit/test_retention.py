"""Retention: inactive users and old items leave the engine and its tables, and nothing else changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from _engine_texts import T0, TEXTS, random_batches

from socrec_online.events import Click, Event, Follow, ItemPublished, Like
from socrec_online.service import retention
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

TTL = 5000.0


def make(encoder: Any, **kw: Any) -> Engine:
    base: dict[str, Any] = {
        "device": "cpu", "top_k": 20, "who_to_follow_k": 5,
        "user_ttl_s": TTL, "item_ttl_s": 3000.0, "item_retention_s": 1000.0, "retention_sweep_s": 100.0,
    }  # fmt: skip
    base.update(kw)
    return Engine(Settings(**base), encoder)


def apply(tables: dict[str, dict[str, Any]], updates: dict[str, dict[str, Any]]) -> None:
    """What the worker does with table updates: None deletes (a tombstone in the changelog)."""
    for name, kv in updates.items():
        for k, v in kv.items():
            if v is None:
                tables[name].pop(k, None)
            else:
                tables[name][k] = v


def run(engine: Engine, batches: Sequence[Sequence[Event]], tables: dict[str, dict[str, Any]]) -> None:
    for b in batches:
        apply(tables, engine.step(b)["table_updates"])


def empty() -> dict[str, dict[str, Any]]:
    return {name: {} for name in Engine.TABLES}


def catalogue(ts: float, n: int = 8, prefix: str = "i") -> list[Event]:
    return [ItemPublished(f"pub-{prefix}{i}-{ts}", f"{prefix}{i}", ts + i, TEXTS[i % 8], author_id="zed") for i in range(n)]


def rec_list(engine: Engine, users: list[str], now: float) -> dict[tuple[str, str], list[tuple[str, float]]]:
    out = {}
    for p in engine.recommend_many(users, now=now):
        out[(p["user_id"], p["kind"])] = [(e["id"], e["score"]) for e in p["items"]]
    return out


def assert_same_lists(a: dict[Any, list[tuple[str, float]]], b: dict[Any, list[tuple[str, float]]]) -> None:
    assert a.keys() == b.keys()
    for key, got in a.items():
        assert [i for i, _ in got] == [i for i, _ in b[key]], key
        assert [s for _, s in got] == pytest.approx([s for _, s in b[key]], abs=1e-5), key


def test_inactive_user_is_evicted_from_engine_tables_and_a_mirror(encoder: Any) -> None:
    eng = make(encoder)
    tables = empty()
    run(eng, [[*catalogue(T0), Click("c1", "old", "i1", T0 + 10), Follow("f1", "old", "ghost", T0 + 11)]], tables)
    assert "old" in tables["activity"] and "old" in tables["social"]
    mirror = make(encoder)  # another worker's engine, fed this worker's changelog
    mirror.upsert({k: dict(v) for k, v in tables.items()})
    assert eng.recommend_now("ghost") is not None  # followed: a row before any event of theirs
    later = T0 + TTL + 500
    res = eng.step([*catalogue(later, prefix="n"), Click("c2", "new", "n1", later + 20)])
    dels = res["table_updates"]
    assert dels["activity"]["old"] is None and dels["social"]["old"] is None
    apply(tables, dels)
    assert "old" not in tables["activity"] and "old" not in tables["social"]
    assert "old" not in eng.activity and "old" not in eng.social
    assert eng.recommend_now("old") is None
    assert eng.recommend_now("ghost") is None  # a follow target that never acted goes with its last follower
    assert eng.recommend_now("new") is not None
    # the mirror sees the owner's writes, deletions included, and forgets the user too
    mirror.upsert({name: {k: v for k, v in kv.items()} for name, kv in dels.items()})
    assert "old" not in mirror.activity and "old" not in mirror.social
    assert mirror.recommend_now("old") is None


def test_followee_that_never_acted_stays_while_a_live_user_follows_them(encoder: Any) -> None:
    eng = make(encoder)
    run(eng, [[*catalogue(T0), Follow("f1", "bob", "ghost", T0 + 10)]], empty())
    t = T0 + TTL / 2
    run(eng, [[Click("c1", "bob", "i2", t)]], empty())  # bob stays active
    t2 = T0 + TTL + 100
    run(eng, [[*catalogue(t2, prefix="n"), Click("c2", "bob", "n2", t2 + 5)]], empty())
    assert "bob" in eng.social and eng.recommend_now("ghost") is not None  # still followed by bob


def test_evicted_user_who_acts_again_starts_fresh_and_is_served(encoder: Any) -> None:
    eng = make(encoder)
    run(eng, [[*catalogue(T0), Click("c1", "u", "i1", T0 + 10), Like("l1", "u", "i3", T0 + 11)]], empty())
    later = T0 + TTL + 500
    run(eng, [catalogue(later, prefix="n"), [Click("x", "other", "n0", later + 9)]], empty())
    assert "u" not in eng.activity
    res = eng.step([Click("c2", "u", "n1", later + 10)])
    assert list(eng.activity["u"].recent) == ["n1"]  # nothing of the old engagements came back
    mine = next(p for p in res["payloads"] if p["user_id"] == "u" and p["kind"] == "items")
    got = [e["id"] for e in mine["items"]]
    assert got and "n1" not in got  # served, with its new engagement filtered


def _streams() -> tuple[list[list[Event]], list[list[Event]]]:
    old_users = [f"a{i}" for i in range(30)]
    live_users = [f"b{i}" for i in range(8)]
    items = [f"it{i}" for i in range(24)]
    kw: dict[str, Any] = {"size": 40, "publish": 0.15, "undo": 0.2, "queries": False, "self_follows": False}
    first = [catalogue(T0, 24, prefix="it"), *random_batches(1, old_users, items, batches=6, **kw)]
    second = random_batches(2, live_users, items, batches=6, **kw)
    shift = TTL + 2000
    second = [[dataclasses.replace(ev, ts=ev.ts + shift) for ev in b] for b in second]
    # live users follow some of the evicted ones: those rows stay, as follow targets
    second[0] = [Follow("keep1", "b0", "a1", T0 + shift), Follow("keep2", "b1", "a2", T0 + shift), *second[0]]
    return first, second


def test_scores_after_eviction_and_compaction_equal_a_fresh_restore_of_the_live_state(
    encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "COMPACT_FRACTION", 1.0)  # compact when this test says so
    first, second = _streams()
    eng = make(encoder)
    tables = empty()
    run(eng, first, tables)
    run(eng, second, tables)
    assert not any(k.startswith("a") and k not in ("a1", "a2") for k in eng.activity)
    assert len(eng.store.dead_users) > 0  # evicted rows are not reclaimed yet
    now = eng.clock
    live = sorted(set(eng.activity) | set(eng.social))
    fresh = make(encoder)
    fresh.restore(tables)
    assert set(fresh.activity) == set(eng.activity) and set(fresh.item_state) == set(eng.item_state)
    assert_same_lists(rec_list(eng, live, now), rec_list(fresh, live, now))
    rows_before = len(eng.users) + len(eng.items)
    eng.compact()
    assert len(eng.users) + len(eng.items) < rows_before and not eng.store.dead_users
    assert (len(eng.users), len(eng.items)) == (len(fresh.users), len(fresh.items))
    assert_same_lists(rec_list(eng, live, now), rec_list(fresh, live, now))


def test_compaction_starts_by_itself_once_dead_rows_pass_half(encoder: Any) -> None:
    first, second = _streams()
    eng = make(encoder)
    run(eng, first, empty())
    peak = len(eng.users)
    run(eng, [[dataclasses.replace(ev, ts=ev.ts + 10 * TTL) for ev in b] for b in second], empty())
    assert len(eng.users) < peak  # the 30 evicted users' rows were reclaimed
    assert not eng.store.dead_users


def test_restore_after_eviction_does_not_bring_evicted_keys_back(encoder: Any) -> None:
    first, second = _streams()
    eng = make(encoder)
    tables = empty()
    run(eng, first, tables)
    run(eng, second, tables)
    evicted = {f"a{i}" for i in range(30)} - {"a1", "a2"}
    again = make(encoder)
    again.restore(tables)
    assert not evicted & (set(again.activity) | set(again.social))
    assert all(again.recommend_now(u) is None for u in evicted - {"a1", "a2"} if u not in again.users)


def test_restore_of_tables_written_before_the_sweep_evicts_again_at_the_first_batch(encoder: Any) -> None:
    first, second = _streams()
    eng = make(encoder)
    tables = empty()
    run(eng, first, tables)
    for b in second:  # a worker that died before writing its deletions: only the values
        res = eng.step(b)["table_updates"]
        apply(tables, {n: {k: v for k, v in kv.items() if v is not None} for n, kv in res.items()})
    again = make(encoder)
    again.restore(tables)
    assert any(k.startswith("a") for k in again.activity)
    out = again.step([Click("late", "b3", "it3", again.clock)])["table_updates"]
    assert {k for k, v in out.get("activity", {}).items() if v is None} >= {"a5", "a6"} & set(tables["activity"])


def test_sweep_is_idempotent(encoder: Any) -> None:
    first, second = _streams()
    eng = make(encoder)
    run(eng, first, empty())
    run(eng, second, empty())
    live = sorted(eng.activity)
    before = rec_list(eng, live, eng.clock)
    rows = (len(eng.users), len(eng.items))
    assert eng.expire() == {}  # everything due was evicted by the sweep in learn_many
    assert eng.expire() == {}
    assert (len(eng.users), len(eng.items)) == rows
    assert_same_lists(rec_list(eng, live, eng.clock), before)


def test_old_items_are_evicted_and_engagements_with_them_stay_in_the_users_values(encoder: Any) -> None:
    eng = make(encoder, user_ttl_s=0.0)
    run(eng, [[*catalogue(T0), Click("c1", "u", "i1", T0 + 10)]], empty())
    later = T0 + 3000 + 1000 + 100
    res = eng.step([*catalogue(later, prefix="n"), Click("c2", "u", "n1", later + 10)])
    assert set(res["table_updates"]["items"]) >= {f"i{i}" for i in range(8)}
    assert all(res["table_updates"]["items"][f"i{i}"] is None for i in range(8))
    assert not any(i.startswith("i") for i in eng.item_state)
    assert "i1" in eng.activity["u"].recent  # kept in the value; left out of the derived state
    assert "u" in eng.activity  # user_ttl_s = 0: users are never evicted


def test_retention_off_evicts_nothing(encoder: Any) -> None:
    eng = make(encoder, user_ttl_s=0.0, item_retention_s=0.0)
    first, second = _streams()
    run(eng, first, empty())
    before = set(eng.activity) | set(eng.social)
    run(eng, second, empty())
    assert before <= set(eng.activity) | set(eng.social)
    assert set(eng.item_state) >= {f"it{i}" for i in range(24)} and not eng.store.dead_users

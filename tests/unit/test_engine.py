"""What a user of the engine notices: social proof with its reason, filters, replays, restarts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from _engine_texts import T0, TEXTS, random_batches

from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile, Query
from socrec_online.service.decode import DeadLetterReason
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings


def make(encoder: Any, **kw: Any) -> Engine:
    base: dict[str, Any] = {"device": "cpu", "top_k": 20, "who_to_follow_k": 5}
    base.update(kw)
    return Engine(Settings(**base), encoder)


def catalogue(n: int = 8) -> list[Event]:
    return [
        ItemPublished(
            f"pub-{i}", f"i{i}", T0 + i, TEXTS[i % len(TEXTS)], author_id="alice" if i == 1 else "zed"
        )
        for i in range(n)
    ]


def items_of(payloads: list[dict[str, Any]], user: str, kind: str = "items") -> list[dict[str, Any]]:
    got = [p for p in payloads if p["user_id"] == user and p["kind"] == kind]
    assert len(got) == 1, got
    return got[0]["items"]


def ids(entries: Sequence[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in entries]


def tables_after(engine: Engine, batches: Sequence[Sequence[Event]]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {name: {} for name in Engine.TABLES}
    for b in batches:
        for name, upd in engine.learn_many(b).table_updates.items():
            tables[name].update(upd)
    return tables


def test_followed_users_like_is_recommended_with_its_reason(encoder: Any) -> None:
    eng = make(encoder)
    r = eng.learn_many([*catalogue(), Follow("f1", "bob", "alice", T0), Like("l1", "alice", "i3", T0 + 10)])
    assert r.rejected == [] and r.applied == 10
    assert "bob" in r.touched_users  # bob's social proof changed: he is republished too
    recs = eng.recommend_many(["bob", "carol"], source_event_ids=r.source_event_ids)
    bob = items_of(recs, "bob")
    assert bob[0] == {"id": "i3", "score": bob[0]["score"], "reason": "liked by 1 person you follow"}
    assert all(p["model_version"] == "zero-shot" for p in recs)
    assert items_of(recs, "bob")[0]["score"] > items_of(recs, "bob")[1]["score"]
    carol = items_of(recs, "carol")  # an unknown user still gets fresh items, never a social reason
    assert carol and not any("you follow" in e["reason"] for e in carol)
    eng.learn_many([Follow("f2", "bob", "dan", T0), Like("l2", "dan", "i3", T0 + 11)])
    bob2 = items_of(eng.recommend_many(["bob"]), "bob")
    assert bob2[0]["id"] == "i3" and bob2[0]["reason"] == "liked by 2 people you follow"


def test_seen_items_never_come_back(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*catalogue(), Follow("f1", "bob", "alice", T0)])
    eng.learn_many([Click("c1", "bob", "i2", T0 + 20), Comment("m1", "bob", "i5", T0 + 21, "this is awful")])
    eng.learn_many(
        [Like("l1", "alice", "i2", T0 + 22), Like("l2", "alice", "i5", T0 + 23)]
    )  # proof can't revive
    recs = ids(items_of(eng.recommend_many(["bob"]), "bob"))
    assert "i2" not in recs and "i5" not in recs
    assert set(recs) == {f"i{i}" for i in range(8)} - {"i2", "i5"}
    q = eng.answer_queries([Query("q1", "bob", T0 + 30, "gravel cycling")])
    assert q[0]["kind"] == "query" and q[0]["source_event_id"] == "q1"
    assert "i2" not in ids(q[0]["items"])


def test_authors_do_not_get_their_own_items(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many(catalogue())
    assert "i1" not in ids(items_of(eng.recommend_many(["alice"]), "alice"))
    assert "i1" in ids(items_of(eng.recommend_many(["bob"]), "bob"))


def test_expired_items_are_dropped(encoder: Any) -> None:
    eng = make(encoder, item_ttl_s=100.0)
    eng.learn_many([ItemPublished("old", "i_old", T0 - 500, "vintage telescope galaxy"), *catalogue()])
    recs = ids(items_of(eng.recommend_many(["bob"]), "bob"))
    assert "i_old" not in recs and "i7" in recs
    # the same item is fine under a clock where it is still young
    assert "i_old" in ids(items_of(eng.recommend_many(["bob"], now=T0 - 450), "bob"))


def test_unfollow_removes_social_proof_and_blocks_suggestion(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*catalogue(), Follow("f1", "bob", "alice", T0), Like("l1", "alice", "i3", T0 + 10)])
    assert items_of(eng.recommend_many(["bob"]), "bob")[0]["reason"] == "liked by 1 person you follow"
    eng.learn_many([Follow("f2", "bob", "alice", T0 + 20, undo=True)])
    recs = eng.recommend_many(["bob"])
    assert not any("you follow" in e["reason"] for e in items_of(recs, "bob"))
    assert "alice" not in ids(items_of(recs, "bob", "users"))


def test_who_to_follow_suggests_friends_of_friends(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*catalogue(), Follow("f1", "bob", "alice", T0), Follow("f2", "alice", "dave", T0)])
    users = items_of(eng.recommend_many(["bob"]), "bob", "users")
    assert users[0] == {"id": "dave", "score": users[0]["score"], "reason": "followed by 1 person you follow"}
    assert "bob" not in ids(users) and "alice" not in ids(users)
    only_items = eng.recommend_many(["bob", "alice"], who_to_follow=["alice"])
    assert [(p["user_id"], p["kind"]) for p in only_items] == [
        ("bob", "items"),
        ("alice", "items"),
        ("alice", "users"),
    ]


def test_new_item_is_recommendable_right_after_its_event(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many(catalogue())
    eng.learn_many([Click(f"c{i}", "bob", f"i{i}", T0 + 10 + i) for i in range(8)])
    assert items_of(eng.recommend_many(["bob"]), "bob") == []  # everything seen
    eng.learn_many([ItemPublished("pub-new", "i_new", T0 + 30, "brand new jazz quartet album")])
    assert ids(items_of(eng.recommend_many(["bob"]), "bob")) == ["i_new"]


def test_unknown_items_are_rejected_and_the_rest_applied(encoder: Any) -> None:
    eng = make(encoder)
    bad: list[Any] = [Click("c1", "bob", "nope", T0), object(), Follow("f0", "bob", "bob", T0)]
    r = eng.learn_many([*catalogue(), *bad, Like("l1", "bob", "i2", T0)])
    assert [(i, reason) for i, reason, _ in r.rejected] == [
        (8, DeadLetterReason.unknown_item),
        (9, DeadLetterReason.unknown_topic),
        (10, DeadLetterReason.self_follow),
    ]
    assert r.applied == 9
    assert "i2" not in ids(items_of(eng.recommend_many(["bob"]), "bob"))


def world() -> list[list[Event]]:
    evs: list[Event] = [*catalogue()]
    evs += [
        Follow("f1", "bob", "alice", T0),
        Follow("f2", "carol", "bob", T0),
        Follow("f3", "alice", "dave", T0),
    ]
    evs += [Profile("p1", "carol", T0, "I love jazz and the garden")]
    evs += [Like("l1", "alice", "i3", T0 + 10), Click("c1", "bob", "i4", T0 + 11, 5000)]
    evs += [
        Comment("m1", "dave", "i6", T0 + 12, "love it, brilliant compost"),
        Click("c2", "dave", "i0", T0 + 13),
    ]
    evs += [Like("l2", "bob", "i4", T0 + 14), Like("l3", "bob", "i4", T0 + 15, undo=True)]
    evs += [Follow("f4", "bob", "erin", T0 + 16), Follow("f5", "bob", "erin", T0 + 17, undo=True)]
    return [evs[:7], evs[7:12], evs[12:]]


def strip_ts(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k != "ts"} for p in payloads]


USERS = ["alice", "bob", "carol", "dave", "erin", "zed", "nobody"]


def test_replayed_batch_changes_nothing(encoder: Any) -> None:
    eng = make(encoder)
    batches = world()
    tables = tables_after(eng, batches)
    before = strip_ts(eng.recommend_many(USERS))
    for b in batches:
        r = eng.learn_many(b)
        assert r.applied == 0 and r.duplicates == len(b) and r.table_updates == {}
        assert r.touched_users == []
    assert strip_ts(eng.recommend_many(USERS)) == before
    assert {"social": eng.social.keys(), "activity": eng.activity.keys()} == {
        "social": tables["social"].keys(),
        "activity": tables["activity"].keys(),
    }


def test_restore_from_tables_recommends_the_same(encoder: Any) -> None:
    live = make(encoder)
    tables = tables_after(live, world())
    restored = make(encoder)
    restored.restore(tables)
    assert restored.stats() == live.stats()
    a, b = strip_ts(live.recommend_many(USERS)), strip_ts(restored.recommend_many(USERS))
    assert [(p["user_id"], p["kind"], ids(p["items"]), [e["reason"] for e in p["items"]]) for p in a] == [
        (p["user_id"], p["kind"], ids(p["items"]), [e["reason"] for e in p["items"]]) for p in b
    ]
    for pa, pb in zip(a, b, strict=True):
        for ea, eb in zip(pa["items"], pb["items"], strict=True):
            assert ea["score"] == pytest.approx(eb["score"], abs=1e-5)
    # the restored worker dedups replays of what was applied before the restart
    r = restored.learn_many(world()[1])
    assert r.applied == 0 and r.table_updates == {}
    # and keeps learning like the live one
    more = [Like("l9", "dave", "i7", T0 + 40), Follow("f9", "erin", "carol", T0 + 41)]
    assert live.learn_many(more).table_updates == restored.learn_many(more).table_updates
    assert ids(items_of(live.recommend_many(["alice"]), "alice")) == ids(
        items_of(restored.recommend_many(["alice"]), "alice")
    )


def test_model_swap_takes_effect_on_the_next_call(encoder: Any) -> None:
    import torch

    class Reverse:
        """A model that ranks items by row, highest first: easy to recognise."""

        def score_users_items(self, engine: Engine, rows: Any, cand: Any, now: float) -> torch.Tensor:
            return torch.as_tensor(cand, dtype=torch.float32)[None, :].repeat(len(rows), 1)

    eng = make(encoder)
    eng.learn_many(catalogue())
    eng.swap_model(Reverse(), "v0001-test")
    recs = eng.recommend_many(["bob"], who_to_follow=False)
    assert recs[0]["model_version"] == "v0001-test"
    assert ids(recs[0]["items"])[:3] == ["i7", "i6", "i5"]
    eng.swap_model(None, "ignored")
    assert eng.recommend_many(["bob"], who_to_follow=False)[0]["model_version"] == "zero-shot"


def test_large_catalogue_uses_the_ann_index_plus_fresh_and_social_items(encoder: Any) -> None:
    eng = make(encoder, ann_threshold=10, ann_candidates=10, fresh_window_s=5.0, top_k=50)
    old = [ItemPublished(f"o{i}", f"old{i}", T0 - 1000 + i, f"{TEXTS[i % 8]} part {i}") for i in range(40)]
    eng.learn_many(
        [*old, *catalogue(), Follow("f1", "bob", "alice", T0), Like("l1", "alice", "old0", T0 + 10)]
    )
    eng.learn_many([Click("c1", "bob", "old5", T0 + 11)])
    assert eng.stats()["ann_items"] == 48
    recs = items_of(eng.recommend_many(["bob"]), "bob")
    got = set(ids(recs))
    fresh = {f"i{i}" for i in range(8) if T0 + i >= eng.clock - 5.0}
    assert fresh and fresh <= got  # fresh items always compete
    assert recs[0]["id"] == "old0" and recs[0]["reason"] == "liked by 1 person you follow"
    assert "old5" not in got
    assert len(got) <= len(fresh) + 10 + 1  # the rest of the old catalogue only through the index
    eng.learn_many([ItemPublished("new", "i_new", T0 + 20, "fresh jazz")])
    assert eng.stats()["ann_items"] == 49 and "i_new" in ids(items_of(eng.recommend_many(["bob"]), "bob"))


def test_a_negative_comment_pushes_similar_items_down(encoder: Any) -> None:
    twin = ItemPublished("pub-twin", "twin", T0 + 9, TEXTS[7])  # same words as i7
    ranks = {}
    for text in ("love it, brilliant", "this is awful, boring and pointless"):
        eng = make(encoder)
        eng.learn_many(
            [*catalogue(), twin, Click("c0", "bob", "i0", T0 + 10), Comment("m", "bob", "i7", T0 + 11, text)]
        )
        recs = ids(items_of(eng.recommend_many(["bob"]), "bob"))
        ranks[text[:4]] = recs.index("twin")
    assert ranks["love"] == 0
    assert ranks["this"] == len(TEXTS) - 2  # last of the 7 unseen items


def test_an_event_from_the_future_does_not_expire_the_catalogue(encoder: Any) -> None:
    import time

    eng = make(encoder, item_ttl_s=86400.0)
    now = time.time()
    eng.learn_many(
        [ItemPublished("p", "i_live", now - 60, "live jazz"), Click("c", "bob", "i_live", now + 10 * 86400)]
    )
    assert eng.clock <= time.time() + 3600
    assert ids(items_of(eng.recommend_many(["carol"]), "carol")) == ["i_live"]


def test_a_future_event_read_back_at_a_restart_does_not_expire_the_catalogue(encoder: Any) -> None:
    import time

    now = time.time()
    live = make(encoder, item_ttl_s=86400.0)
    catalogue_now = [ItemPublished("p1", "i_jazz", now - 60, "live jazz"), ItemPublished("p2", "i_folk", now - 60, "folk")]
    tables = tables_after(live, [catalogue_now, [Click("c1", "bob", "i_jazz", 4.0e9)]])  # year 2096
    restored = make(encoder, item_ttl_s=86400.0)
    restored.restore(tables)
    out = restored.step([Click("c2", "carol", "i_jazz", now)])  # a new user's ordinary click
    assert ids(items_of(out["payloads"], "carol")) == ["i_folk"]


def test_restore_leaves_out_malformed_values_counts_them_and_logs_once(
    encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from socrec_online import metrics

    live = make(encoder)
    tables = tables_after(live, world())
    # bob's engagements name an item the catalogue lacks (its value was lost); values no engine wrote
    bob = dict(tables["activity"]["bob"])
    bob["recent"] = {"ghost": [1.0, T0 + 1, 1], **bob["recent"]}
    tables["activity"]["bob"] = bob
    tables["activity"]["mallory"] = {"recent": {"i1": ["heavy", T0, 1]}, "ids": []}
    tables["items"]["i_bad"] = {"text": 5, "ts": T0}
    tables["items"]["i_list"] = ["not", "an", "object"]  # type: ignore[assignment]
    tables["social"]["eve"] = {"following": [["x"]], "ids": []}

    def skipped(table: str, reason: str) -> float:
        return metrics.sample("socrec_state_values_skipped_total", {"table": table, "reason": reason}) or 0.0

    before = {k: skipped(*k) for k in [("items", "malformed"), ("social", "malformed"), ("activity", "malformed"),
                                      ("activity", "unknown_item")]}  # fmt: skip
    restored = make(encoder)
    with caplog.at_level(logging.WARNING, logger="socrec_online.service.tables_in"):
        restored.restore(tables)
    after = {k: skipped(*k) for k in before}
    assert {k: after[k] - before[k] for k in before} == {
        ("items", "malformed"): 2, ("social", "malformed"): 1, ("activity", "malformed"): 1,
        ("activity", "unknown_item"): 1,
    }  # fmt: skip
    assert len([r for r in caplog.records if "left out" in r.getMessage()]) == 1
    assert restored.stats() == live.stats()  # everything well-formed is back
    assert ids(items_of(restored.recommend_many(["bob"]), "bob")) == ids(items_of(live.recommend_many(["bob"]), "bob"))
    assert "ghost" in restored.activity["bob"].recent  # kept in the state: its item may still come


def test_refused_events_from_new_users_leave_no_state_behind(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many(catalogue(2))
    before = eng.stats()
    r = eng.learn_many(
        [Click(f"c{k}", f"stranger{k}", f"no-such-item-{k}", T0) for k in range(200)]
        + [Follow(f"f{k}", f"loner{k}", f"loner{k}", T0) for k in range(50)]
    )
    assert len(r.rejected) == 250 and r.table_updates == {}
    assert eng.stats() == before  # no user rows, no state: hostile ids cost the worker nothing


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_random_streams_keep_every_promise(encoder: Any, seed: int) -> None:
    """Random mixes of every event kind (undos, repeats, unknown ids): no crash, filters hold, restore agrees."""
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(12)]
    items = [f"x{i}" for i in range(30)]
    eng = make(encoder, top_k=8, recent_per_user=6, seen_per_user=10)
    tables: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}
    author: dict[str, str | None] = {}
    for batch in random_batches(
        seed, users, items, batches=12, size=25, publish=0.15, undo=0.3, queries=True, self_follows=True
    ):
        author.update((ev.item_id, ev.author_id) for ev in batch if isinstance(ev, ItemPublished))
        if rng.random() < 0.3:
            batch += batch[:5]  # in-batch replays
        r = eng.learn_many(batch)
        assert {reason for _, reason, _ in r.rejected} <= {
            DeadLetterReason.unknown_item,
            DeadLetterReason.self_follow,
        }
        for name, upd in r.table_updates.items():
            tables[name].update(upd)
        for p in eng.recommend_many(users) + eng.answer_queries(r.queries):
            got = ids(p["items"])
            assert len(got) == len(set(got)) and p["user_id"] not in got
            if p["kind"] != "users":
                act = eng.activity.get(p["user_id"])
                assert not set(got) & set(act.seen if act else ())
                assert all(author.get(i) != p["user_id"] for i in got)
            else:
                soc = eng.social.get(p["user_id"])
                assert not set(got) & set(soc.following if soc else ())
    restored = make(encoder, top_k=8, recent_per_user=6, seen_per_user=10)
    restored.restore(tables)
    strip = [(p["user_id"], p["kind"], ids(p["items"])) for p in eng.recommend_many(users)]
    assert strip == [(p["user_id"], p["kind"], ids(p["items"])) for p in restored.recommend_many(users)]


def test_rec_id_is_the_same_for_a_replayed_answer_and_differs_otherwise() -> None:
    from socrec_online.service.rec_id import rec_id

    a = rec_id("e-1", "u1", "items")
    assert a == rec_id("e-1", "u1", "items")  # a replay of the same batch publishes the same id
    assert len({a, rec_id("e-1", "u1", "users"), rec_id("e-2", "u1", "items"), rec_id("e-1", "u2", "items")}) == 4
    # without a source event: the same list for the same user is the same recommendation
    assert rec_id(None, "u1", "items", ["i1", "i2"]) == rec_id(None, "u1", "items", ["i1", "i2"])
    assert rec_id(None, "u1", "items", ["i1", "i2"]) != rec_id(None, "u1", "items", ["i2", "i1"])

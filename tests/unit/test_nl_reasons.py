"""Explanations (issue #5, Must 4): built from the evidence the scorer used, in a fixed wording,
bounded in length, and never revealing another user's private data (only followed users' public
likes are counted, nobody is named, nobody's comments, profile or clicks are quoted)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from _engine_texts import T0, TEXTS

from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile, Query
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

MAX_REASON = 140
_W = r"[a-z0-9][a-z0-9'\-]*"
GRAMMAR = [
    re.compile(r"liked by \d+ (person|people) you follow"),
    re.compile(r'similar to ".{1,40}" you (liked|viewed)'),
    re.compile(rf"matches your interests(: {_W}(, {_W}){{0,2}})?"),
    re.compile(r"matches what people you follow like"),
    re.compile(r"popular now|new"),
    re.compile(rf"matches your request(: {_W}(, {_W}){{0,2}})?(; liked by \d+ (person|people) you follow)?"),
    re.compile(r"followed by \d+ (person|people) you follow|shares your interests"),
]


def make(encoder: Any, **kw: Any) -> Engine:
    return Engine(Settings(**({"device": "cpu", "top_k": 20, "who_to_follow_k": 5} | kw)), encoder)


def catalogue() -> list[Event]:
    return [ItemPublished(f"pub-{i}", f"i{i}", T0 + i, t, author_id="zed") for i, t in enumerate(TEXTS)]


def items_of(payloads: list[dict[str, Any]], user: str, kind: str = "items") -> dict[str, dict[str, Any]]:
    return {e["id"]: e for p in payloads if p["user_id"] == user and p["kind"] == kind for e in p["items"]}


def words(text: str) -> set[str]:
    return set(re.findall(_W, text.lower()))


def test_only_followed_users_likes_are_counted(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([
        *catalogue(),
        Follow("f1", "bob", "alice", T0),
        Follow("f2", "carol", "bob", T0),  # carol follows bob: bob does not see carol
        Like("l1", "alice", "i3", T0 + 10),
        Like("l2", "carol", "i3", T0 + 10),
        Like("l3", "stranger", "i3", T0 + 10),
        Like("l4", "carol", "i4", T0 + 10),
    ])
    bob = items_of(eng.recommend_many(["bob"]), "bob")
    assert bob["i3"]["reason"] == "liked by 1 person you follow"
    assert "you follow" not in bob["i4"]["reason"] or bob["i4"]["reason"].startswith("matches what")
    assert not bob["i4"]["reason"].startswith("liked by")


def test_a_followees_clicks_are_private_and_never_cited(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*catalogue(), Follow("f1", "bob", "alice", T0), Click("c1", "alice", "i3", T0 + 10, 9000)])
    reason = items_of(eng.recommend_many(["bob"]), "bob")["i3"]["reason"]
    assert "you follow" not in reason or reason == "matches what people you follow like"
    assert not re.search(r"\d+ (person|people)", reason)
    # the click still counts in the score (social proof): i3 ranks first for bob
    recs = next(p for p in eng.recommend_many(["bob"]) if p["kind"] == "items")["items"]
    assert recs[0]["id"] == "i3"


def test_other_users_texts_and_ids_never_appear(encoder: Any) -> None:
    eng = make(encoder)
    secret_profile = "zzsecretprofile quartet saxophone bebop"
    secret_comment = "zzsecretcomment about the banjo ballad"
    eng.learn_many([
        *catalogue(),
        Follow("f1", "bob", "alice_private_id", T0),
        Profile("p1", "alice_private_id", T0, secret_profile),
        Comment("m1", "alice_private_id", "i0", T0 + 10, secret_comment),
        Like("l1", "alice_private_id", "i7", T0 + 11),
        Follow("f2", "alice_private_id", "dora_private_id", T0),
    ])
    out = eng.recommend_many(["bob"]) + eng.answer_queries([Query("q", "bob", T0 + 20, "jazz saxophone")])
    text = " ".join(e["reason"] for p in out for e in p["items"])
    for secret in ("alice_private_id", "dora_private_id", "zzsecretprofile", "zzsecretcomment"):
        assert secret not in text
    # who-to-follow may suggest dora (she is public in the follow graph) but not say who follows her
    users = items_of(out, "bob", "users")
    assert users["dora_private_id"]["reason"] == "followed by 1 person you follow"


def test_similar_item_reason_names_only_what_the_user_liked(encoder: Any) -> None:
    twin = ItemPublished("pub-twin", "twin", T0 + 9, TEXTS[7] + " live")
    eng = make(encoder)
    eng.learn_many([*catalogue(), twin, Like("l7", "bob", "i7", T0 + 10),
                    Click("c5", "bob", "i5", T0 + 10), Comment("m5", "bob", "i5", T0 + 11, "this is awful")])
    bob = items_of(eng.recommend_many(["bob"]), "bob")
    assert bob["twin"]["reason"] == f'similar to "{TEXTS[7]}" you liked'
    for e in bob.values():  # the panned item is never offered as a reason to like something
        assert TEXTS[5] not in e["reason"]


def test_profile_and_query_words_in_a_reason_are_in_both_texts(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*catalogue(), Profile("p", "newbie", T0, "I love the banjo, folk ballads and galaxy photos")])
    recs = items_of(eng.recommend_many(["newbie"]), "newbie")
    profile_words = words("I love the banjo, folk ballads and galaxy photos")
    cited = 0
    for iid, e in recs.items():
        m = re.fullmatch(r"matches your interests: (.+)", e["reason"])
        if m:
            cited += 1
            for w in m.group(1).split(", "):
                assert w in profile_words and w in words(TEXTS[int(iid[1:])]), (w, iid)
    assert cited >= 2  # the banjo item and the galaxy item at least
    q = eng.answer_queries([Query("q1", "newbie", T0 + 5, "a tomatoes compost garden guide")])[0]
    # which items match is the text tower's call (a random tiny one here); the words cited are not
    by_id = {e["id"]: e["reason"] for e in q["items"]}
    assert by_id["i6"] == "matches your request: compost, garden, tomatoes"
    query_words = words("a tomatoes compost garden guide")
    for iid, reason in by_id.items():
        m = re.fullmatch(r"matches your request(?:: ([^;]+))?(?:; .*)?", reason)
        assert m, reason
        for w in (m.group(1) or "").split(", ") if m.group(1) else ():
            assert w in query_words and w in words(TEXTS[int(iid[1:])]), (w, iid)


def test_reasons_are_bounded_and_in_the_fixed_wording_even_for_hostile_texts(encoder: Any) -> None:
    long_word = "x" * 300
    eng = make(encoder)
    eng.learn_many([
        ItemPublished("p-long", "long", T0, " ".join([long_word] * 50) + " banjo folk ballad " * 200),
        *catalogue(),
        Profile("p", "bob", T0, ("banjo folk ballad " + long_word + " ") * 100),
        Like("l1", "bob", "long", T0 + 1),
        Follow("f1", "bob", "alice", T0),
        *[Like(f"lx{i}", "alice", f"i{i}", T0 + 2) for i in range(8)],
    ])
    for i in range(30):  # many followees liked the same item: the count stays a number
        eng.learn_many([Follow(f"ff{i}", "bob", f"fan{i}", T0), Like(f"lf{i}", f"fan{i}", "i2", T0 + 3)])
    out = eng.recommend_many(["bob", "nobody"]) + eng.answer_queries(
        [Query("q", "bob", T0 + 4, ("banjo " + long_word + " ") * 200)]
    )
    reasons = [e["reason"] for p in out for e in p["items"]]
    assert reasons
    assert items_of(out, "bob")["i2"]["reason"] == "liked by 31 people you follow"
    for r in reasons:
        assert len(r) <= MAX_REASON, r
        assert any(g.fullmatch(r) for g in GRAMMAR), r


@pytest.mark.parametrize("seed", [1, 2])
def test_every_reason_in_a_random_world_follows_the_rules(encoder: Any, seed: int) -> None:
    """Random mixes of events: each reason is in the grammar and its counted evidence is real."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(10)]
    eng = make(encoder, top_k=8)
    eng.learn_many(catalogue())
    likes: dict[str, set[str]] = {}
    follows: dict[str, set[str]] = {}
    batch: list[Event] = []
    for n in range(200):
        u, it = rng.choice(users), f"i{rng.randrange(len(TEXTS))}"
        r = rng.random()
        if r < 0.3:
            ev: Event = Like(f"e{n}", u, it, T0 + 10 + n, undo=rng.random() < 0.2)
        elif r < 0.5:
            ev = Click(f"e{n}", u, it, T0 + 10 + n)
        elif r < 0.6:
            ev = Comment(f"e{n}", u, it, T0 + 10 + n, rng.choice(["love it", "this is awful"]))
        else:
            ev = Follow(f"e{n}", u, rng.choice(users), T0 + 10 + n, undo=rng.random() < 0.2)
        batch.append(ev)
        if len(batch) == 10:  # micro-batches, as the worker feeds them
            eng.learn_many(batch)
            batch = []
    for u in users:
        act = eng.activity.get(u)
        likes[u] = {i for i, (w, _, k) in (act.recent.items() if act else ()) if k & 2 and w > 0}
        soc = eng.social.get(u)
        follows[u] = set(soc.following) if soc else set()
    out = eng.recommend_many(users) + eng.answer_queries([Query(f"q{u}", u, T0 + 500, "jazz banjo") for u in users])
    for p in out:
        for e in p["items"]:
            r = e["reason"]
            assert len(r) <= MAX_REASON and any(g.fullmatch(r) for g in GRAMMAR), r
            m = re.search(r"liked by (\d+) (person|people) you follow", r)
            if m and p["kind"] != "users":
                assert int(m.group(1)) == sum(e["id"] in likes[f] for f in follows[p["user_id"]]), (p["user_id"], e)

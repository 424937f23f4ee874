"""The engine's reads for the HTTP API (``recommend_now``, ``answer_now``): the lists the engine would
publish, None for a user it does not know, and no state change (nothing counted as shown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from socrec_online import metrics
from socrec_online.events import Click, Event, Follow, ItemPublished, Like, Query
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path), cache_size=10_000))


def world() -> list[Event]:
    items = [ItemPublished(f"p{i}", f"j{i}", T0 + i, f"bebop saxophone jazz quartet number {i}") for i in range(8)]
    return [
        *items,
        Follow("f1", "bob", "alice", T0 + 10),
        Follow("f2", "alice", "carol", T0 + 10),
        Like("l1", "alice", "j4", T0 + 11),
        Like("l2", "carol", "j2", T0 + 11),
    ]


def make(encoder: Any) -> Engine:
    eng = Engine(Settings(device="cpu", top_k=5, who_to_follow_k=3), encoder)
    eng.learn_many(world())
    return eng


def ids(payload: dict[str, Any]) -> list[str]:
    return [e["id"] for e in payload["items"]]


def test_reads_equal_what_the_engine_would_publish_and_unknown_users_are_none(encoder: Any) -> None:
    eng = make(encoder)
    published = {p["kind"]: p for p in eng.recommend_many(["bob"], who_to_follow=True)}
    items = eng.recommend_now("bob", "items")
    users = eng.recommend_now("bob", "users")
    assert items is not None and users is not None
    assert ids(items) == ids(published["items"]) and items["kind"] == "items"
    assert ids(users) == ids(published["users"]) == ["carol"]  # a friend of a friend
    assert items["source_event_id"] is None and items["model_version"] == "zero-shot"
    assert eng.recommend_now("nobody") is None and eng.answer_now("nobody", "jazz") is None


def test_a_query_read_is_the_query_answer_cut_to_k(encoder: Any) -> None:
    eng = make(encoder)
    (event_answer,) = eng.answer_queries([Query("q", "bob", T0 + 20, "saxophone quartet")])
    now = eng.answer_now("bob", "saxophone quartet", 3)
    assert now is not None and now["kind"] == "query" and now["source_event_id"] is None
    assert ids(now) == ids(event_answer)[:3] and now["rec_id"] != event_answer["rec_id"]
    full = eng.answer_now("bob", "saxophone quartet")
    assert full is not None and ids(full) == ids(event_answer)


def test_a_read_list_is_not_counted_as_shown(encoder: Any) -> None:
    """The online hit ratio counts clicks on published lists; a list read over the API is not one."""
    eng = make(encoder)
    assert eng.recommend_now("dave") is None
    eng.learn_many([Follow("f3", "dave", "alice", T0 + 30)])  # dave is known now; nothing was published
    listed = eng.recommend_now("dave")
    assert listed is not None and listed["items"]
    other = next(f"j{i}" for i in range(8) if f"j{i}" not in ids(listed))
    before = metrics.sample("socrec_online_hit_ratio")
    eng.learn_many([Click("c1", "dave", other, T0 + 40)])  # a miss, were the read list remembered
    assert metrics.sample("socrec_online_hit_ratio") == before  # no hit or miss recorded
    shown = eng.recommend_many(["dave"], who_to_follow=False)[0]  # published: counted from now on
    eng.learn_many([Click("c2", "dave", shown["items"][0]["id"], T0 + 50)])
    assert metrics.sample("socrec_online_hit_ratio") == 1.0  # this engine's only click on a shown list

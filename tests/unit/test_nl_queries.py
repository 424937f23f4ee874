"""Queries in words (issue #5, Must 3): validated like every input, answered once with kind "query"
and the source event id, personalised by the asker's social and interest towers, and never taken
for an engagement. (Through Kafka: tests/integration/test_service.py; latency: bench throughput.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from socrec_online.events import Click, Event, Follow, ItemPublished, Like, Query
from socrec_online.service.decode import DeadLetterReason, DecodeError, decode_event
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

T0 = 1_700_000_000.0
S = Settings(max_text_bytes=64, max_id_chars=16)


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path), cache_size=10_000))


def make(encoder: Any, top_k: int = 5) -> Engine:
    return Engine(Settings(device="cpu", top_k=top_k, who_to_follow_k=0), encoder)


def jazz() -> list[Event]:
    return [ItemPublished(f"pub-j{i}", f"j{i}", T0 + i, f"bebop saxophone jazz quartet number {i}") for i in range(6)]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"event_id": "q", "user_id": "u", "ts": 1}, DeadLetterReason.missing_field),
        ({"event_id": "q", "user_id": "u", "ts": 1, "text": 7}, DeadLetterReason.wrong_type),
        ({"event_id": "q", "user_id": "u", "ts": 1, "text": "jazz " * 20}, DeadLetterReason.text_too_long),
        ({"event_id": "q", "user_id": "", "ts": 1, "text": "jazz"}, DeadLetterReason.empty_id),
        ({"event_id": "q", "user_id": "u", "ts": 1_700_000_000_000, "text": "jazz"}, DeadLetterReason.bad_timestamp),
        ({"event_id": "q", "user_id": "u", "ts": 1, "text": "\n\t "}, DeadLetterReason.empty_text),
    ],
)
def test_bad_queries_are_dead_lettered_with_a_reason(value: dict[str, Any], reason: DeadLetterReason) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_event("queries", orjson.dumps(value), S)
    assert exc.value.reason is reason


def test_a_query_is_answered_once_with_its_source_event(encoder: Any) -> None:
    eng = make(encoder)
    raw = orjson.dumps({"event_id": "q-1", "user_id": "bob", "ts": T0 + 10, "text": "saxophone quartet"})
    q = decode_event("queries", raw, Settings())
    eng.learn_many(jazz())
    r = eng.learn_many([q])
    assert [x.event_id for x in r.queries] == ["q-1"] and r.touched_users == []  # not an engagement
    (ans,) = eng.answer_queries(r.queries)
    assert {k: ans[k] for k in ("user_id", "kind", "source_event_id", "model_version")} == {
        "user_id": "bob", "kind": "query", "source_event_id": "q-1", "model_version": "zero-shot",
    }
    assert len(ans["items"]) == 5 and all(e["reason"].startswith("matches your request") for e in ans["items"])
    again = eng.learn_many([q])  # a replayed query is a duplicate: no second answer
    assert again.queries == [] and again.duplicates == 1


def test_the_same_words_get_answers_personalised_by_who_you_follow(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*jazz(), Follow("f", "bob", "alice", T0), Like("l", "alice", "j4", T0 + 10)])
    ask = [Query("qb", "bob", T0 + 20, "jazz quartet"), Query("qc", "carol", T0 + 20, "jazz quartet")]
    bob, carol = eng.answer_queries(ask)
    assert bob["items"][0]["id"] == "j4" and bob["items"][0]["reason"].endswith("; liked by 1 person you follow")
    assert not any("you follow" in e["reason"] for e in carol["items"])


def test_the_askers_interest_tower_tilts_the_answer(encoder: Any) -> None:
    """Two users with opposite histories ask the same vague question: each gets their side tilted up."""
    eng = make(encoder, top_k=20)
    a = [ItemPublished(f"a{i}", f"a{i}", T0 + i, f"acoustic folk banjo ballad songwriter {i}") for i in range(4)]
    c = [ItemPublished(f"c{i}", f"c{i}", T0 + i, f"gravel cycling peloton climb tour {i}") for i in range(4)]
    eng.learn_many([*a, *c, Click("x1", "folkie", "a0", T0 + 10), Click("x2", "rider", "c0", T0 + 10)])
    folkie, rider = eng.answer_queries(
        [Query("q1", "folkie", T0 + 20, "something new"), Query("q2", "rider", T0 + 20, "something new")]
    )
    f = {e["id"]: e["score"] for e in folkie["items"]}
    r = {e["id"]: e["score"] for e in rider["items"]}
    for i in range(1, 4):  # each asker's own side scores higher for them than for the other
        assert f[f"a{i}"] > r[f"a{i}"] and r[f"c{i}"] > f[f"c{i}"]


def test_asking_changes_nothing_the_user_is_recommended(encoder: Any) -> None:
    eng = make(encoder)
    eng.learn_many([*jazz(), Click("c", "bob", "j1", T0 + 5)])
    before = [(e["id"], e["reason"]) for e in eng.recommend_many(["bob"], who_to_follow=False)[0]["items"]]
    r = eng.learn_many([Query("q", "bob", T0 + 6, "gravel cycling")])
    eng.answer_queries(r.queries)
    after = [(e["id"], e["reason"]) for e in eng.recommend_many(["bob"], who_to_follow=False)[0]["items"]]
    assert before == after

"""The topics' JSON Schemas: shipped, printed by ``socrec schema``, and in agreement with the decoder.

A producer that validates with the schema must be refused by the worker only for what JSON
Schema cannot say (listed in socrec_online/contract.py and docs/topics.md), and never refused
by the schema for a record the worker would accept.
"""

from __future__ import annotations

import json
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from socrec_online.contract import TOPICS, shipped_schema, topic_schema, write_schemas
from socrec_online.events import EVENT_OF_TOPIC, INPUT_TOPICS
from socrec_online.service.decode import DeadLetterReason, DecodeError, dead_letter_record, decode_event
from socrec_online.settings import Settings
from socrec_online.types import SCHEMA_VERSION
from streams.cli import app

S = Settings(max_text_bytes=64, max_payload_bytes=512, max_id_chars=16, max_tags=3)  # type: ignore[call-arg]
VALIDATORS = {t: Draft202012Validator(topic_schema(t, S)) for t in TOPICS}
# What the decoder refuses and JSON Schema cannot express (socrec_online/contract.py's docstring).
OUTSIDE_SCHEMA = {
    DeadLetterReason.payload_too_large,
    DeadLetterReason.text_too_long,  # only when the text is short in characters but long in UTF-8 bytes
    DeadLetterReason.self_follow,
}

BASE: dict[str, dict[str, Any]] = {
    "clicks": {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1_700_000_000.5},
    "likes": {"event_id": "e2", "user_id": "u1", "item_id": "i1", "ts": 1_700_000_001},
    "comments": {"event_id": "e3", "user_id": "u1", "item_id": "i1", "ts": 1.0, "text": "love it ✨"},
    "follows": {"event_id": "e4", "user_id": "u1", "target_id": "u2", "ts": 0},
    "items": {"event_id": "e5", "item_id": "i9", "ts": 2.0, "text": "jazz quartet"},
    "profiles": {"event_id": "e6", "user_id": "u1", "ts": 3.0, "text": "indie folk"},
    "queries": {"event_id": "e7", "user_id": "u1", "ts": 4.0, "text": "telescopes"},
}
DROP = object()


def decoder_verdict(topic: str, raw: bytes) -> str | None:
    """None when the worker accepts the value, else its dead-letter reason."""
    try:
        decode_event(topic, raw, S)
    except DecodeError as e:
        return str(e.reason)
    return None


def schema_accepts(topic: str, raw: bytes) -> bool:
    return VALIDATORS[topic].is_valid(json.loads(raw))


def with_field(topic: str, name: str, value: Any) -> bytes:
    d = dict(BASE[topic])
    if value is DROP:
        d.pop(name, None)
    else:
        d[name] = value
    return orjson.dumps(d)


# (topic, field, value, the decoder's reason or None when accepted)
CASES: list[tuple[str, str, Any, str | None]] = [
    *[(t, "event_id", DROP, "missing_field") for t in INPUT_TOPICS],
    ("clicks", "user_id", None, "missing_field"),
    ("clicks", "user_id", 7, "wrong_type"),
    ("clicks", "user_id", "", "empty_id"),
    ("clicks", "user_id", " \t", "empty_id"),
    ("clicks", "user_id", "u" * 16, None),
    ("clicks", "user_id", "u" * 17, "id_too_long"),
    ("clicks", "user_id", "é" * 16, None),  # characters, not bytes
    ("clicks", "ts", "1700000000", "wrong_type"),
    ("clicks", "ts", True, "wrong_type"),
    ("clicks", "ts", -0.001, "bad_timestamp"),
    ("clicks", "ts", 4_102_444_800, None),
    ("clicks", "ts", 1_700_000_000_000, "bad_timestamp"),  # milliseconds
    ("clicks", "dwell_ms", 1500, None),
    ("clicks", "dwell_ms", 1500.0, None),
    ("clicks", "dwell_ms", 1500.5, "wrong_type"),
    ("clicks", "dwell_ms", -1, "out_of_range"),
    ("clicks", "dwell_ms", 86_400_000, None),
    ("clicks", "dwell_ms", 86_400_001, "out_of_range"),
    ("clicks", "dwell_ms", "1500", "wrong_type"),
    ("clicks", "dwell_ms", False, "wrong_type"),
    ("clicks", "dwell_ms", None, None),
    ("likes", "undo", True, None),
    ("likes", "undo", None, None),
    ("likes", "undo", 1, "wrong_type"),
    ("likes", "undo", "false", "wrong_type"),
    ("comments", "text", DROP, "missing_field"),
    ("comments", "text", "", None),
    ("comments", "text", "x" * 64, None),
    ("comments", "text", "x" * 65, "text_too_long"),
    ("comments", "text", ["hi"], "wrong_type"),
    ("follows", "target_id", DROP, "missing_field"),
    ("follows", "undo", False, None),
    ("items", "author_id", None, None),
    ("items", "author_id", "u2", None),
    ("items", "author_id", "", "empty_id"),
    ("items", "author_id", 3, "wrong_type"),
    ("items", "tags", ["a", "b", "c"], None),
    ("items", "tags", ["a", "b", "c", "d"], "out_of_range"),
    ("items", "tags", [""], None),
    ("items", "tags", ["t" * 17], "text_too_long"),
    ("items", "tags", [1], "wrong_type"),
    ("items", "tags", "jazz", "wrong_type"),
    ("items", "tags", None, None),
    ("items", "item_id", DROP, "missing_field"),
    ("profiles", "text", "", None),
    ("queries", "text", "", "empty_text"),
    ("queries", "text", "  \n", "empty_text"),
    ("queries", "text", " why? ", None),
    ("queries", "extra", {"any": ["thing"]}, None),  # unknown fields are allowed
]


@pytest.mark.parametrize("topic,name,value,reason", CASES, ids=[f"{c[0]}.{c[1]}={c[2]!r:.20}" for c in CASES])
def test_schema_and_decoder_agree_on_edge_cases(topic: str, name: str, value: Any, reason: str | None) -> None:
    raw = with_field(topic, name, value)
    assert decoder_verdict(topic, raw) == reason  # the case says what the worker really does
    assert schema_accepts(topic, raw) is (reason is None), f"schema disagrees with the decoder ({reason})"


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_non_objects_are_refused_by_both(topic: str) -> None:
    for raw in (b"[]", b'"clicks"', b"3", b"null"):
        assert decoder_verdict(topic, raw) == "not_object"
        assert not schema_accepts(topic, raw)


def test_what_the_schema_cannot_say_is_exactly_the_documented_list() -> None:
    """Each of these passes the schema and is refused by the worker, for the reason documented."""
    gaps = {
        "self_follow": ("follows", with_field("follows", "target_id", "u1")),
        "text_too_long": ("comments", with_field("comments", "text", "é" * 40)),  # 40 chars, 80 bytes
        "payload_too_large": ("clicks", orjson.dumps({**BASE["clicks"], "pad": "x" * 600})),
    }
    for reason, (topic, raw) in gaps.items():
        assert schema_accepts(topic, raw), reason
        assert decoder_verdict(topic, raw) == reason
    assert {str(r) for r in OUTSIDE_SCHEMA} == set(gaps)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(alphabet=st.sampled_from("ab é\t\n\u3000"), max_size=20),
    st.sampled_from(["", " \t", "\u3000", "x" * 16, "x" * 17, "x" * 64, "x" * 65, 0, -1, 4_102_444_801]),
)
_VALUES = st.one_of(_SCALARS, _SCALARS, st.lists(_SCALARS, max_size=5), st.dictionaries(st.text(max_size=3), _SCALARS, max_size=2))


@st.composite
def records(draw: st.DrawFn) -> tuple[str, bytes]:
    """A topic and a value near its contract: each field kept, dropped, or replaced by anything."""
    topic = draw(st.sampled_from(INPUT_TOPICS))
    d = dict(BASE[topic])
    for f in fields(EVENT_OF_TOPIC[topic]):
        choice = draw(st.sampled_from("kkkkkkdrrr"))  # mostly kept: a lone bad field decides the verdict
        if choice == "d":
            d.pop(f.name, None)
        elif choice == "r":
            d[f.name] = draw(_VALUES)
    return topic, orjson.dumps(d)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_schema_and_decoder_agree_on_generated_records(rec: tuple[str, bytes]) -> None:
    topic, raw = rec
    reason = decoder_verdict(topic, raw)
    if reason == DeadLetterReason.text_too_long:
        # the schema bounds a text in characters, the decoder in UTF-8 bytes: both refuse a text
        # too long in characters; only the decoder one that is long in bytes alone
        text = json.loads(raw)["text"]
        assert schema_accepts(topic, raw) is (len(text) <= S.max_text_bytes), raw
        return
    if reason in OUTSIDE_SCHEMA:
        assert schema_accepts(topic, raw)  # refused only for what the schema cannot say
        return
    assert schema_accepts(topic, raw) is (reason is None), (raw, reason)


def test_the_package_ships_every_schema_as_generated_at_the_defaults(tmp_path: Path) -> None:
    """Regenerate with `socrec schema --out socrec_online/schemas` (with no SOCREC_ bounds set)."""
    write_schemas(tmp_path, Settings.model_construct())
    for topic in TOPICS:
        Draft202012Validator.check_schema(shipped_schema(topic))
        generated = json.loads((tmp_path / f"{topic}.schema.json").read_text())
        assert shipped_schema(topic) == generated, f"{topic}: the shipped schema is stale"


def test_output_records_carry_the_schema_version_and_match_their_schemas() -> None:
    dead = dead_letter_record("clicks", 3, 42, DeadLetterReason.bad_json, "bad", b"{oops", 2048)
    assert dead["schema_version"] == SCHEMA_VERSION
    VALIDATORS["dead-letters"].validate(dead)
    none = dead_letter_record("clicks", None, None, "empty_payload", "no value", None, 2048)
    VALIDATORS["dead-letters"].validate(none)
    assert not VALIDATORS["dead-letters"].is_valid({**dead, "schema_version": SCHEMA_VERSION + 1})
    for reason in DeadLetterReason:  # every reason a consumer may see is documented
        assert reason.value in shipped_schema("dead-letters")["properties"]["reason"]["examples"]


def test_engine_recommendations_match_the_schema(encoder: Any) -> None:
    from socrec_online.events import Follow, ItemPublished, Like, Query
    from socrec_online.service.engine import Engine

    eng = Engine(Settings(device="cpu", who_to_follow_k=5), encoder)  # type: ignore[call-arg]
    r = eng.learn_many(
        [
            ItemPublished("p1", "i1", 10.0, "jazz trio live"),
            ItemPublished("p2", "i2", 11.0, "folk songs"),
            Follow("f1", "bob", "alice", 12.0),
            Like("l1", "alice", "i1", 13.0),
        ]
    )
    payloads = eng.recommend_many(["bob", "alice"], source_event_ids=r.source_event_ids)
    payloads += eng.answer_queries([Query("q1", "bob", 14.0, "some jazz")])
    assert {p["kind"] for p in payloads} >= {"items", "query"}
    for p in payloads:
        assert p["schema_version"] == SCHEMA_VERSION
        VALIDATORS["recommendations"].validate(json.loads(orjson.dumps(p)))


def test_model_update_announcements_match_the_schema() -> None:
    from streams.model_updates import announcement

    VALIDATORS["model-updates"].validate(json.loads(announcement("v1", "/snap/v1", {"recall@10": 0.2})))


runner = CliRunner()


def test_socrec_schema_clicks_rejects_what_the_decoder_rejects() -> None:
    out = runner.invoke(app, ["schema", "clicks"], env={"SOCREC_MAX_ID_CHARS": "16"})
    assert out.exit_code == 0, out.output
    v = Draft202012Validator(json.loads(out.output))
    good = orjson.dumps(BASE["clicks"])
    assert v.is_valid(json.loads(good)) and decoder_verdict("clicks", good) is None
    for name, value in (("ts", "soon"), ("user_id", "u" * 17), ("dwell_ms", -5), ("item_id", DROP)):
        raw = with_field("clicks", name, value)
        assert decoder_verdict("clicks", raw) is not None and not v.is_valid(json.loads(raw)), name


def test_socrec_schema_lists_every_topic_and_refuses_an_unknown_one() -> None:
    out = runner.invoke(app, ["schema"])
    assert out.exit_code == 0 and set(json.loads(out.output)) == set(TOPICS)
    bad = runner.invoke(app, ["schema", "click"])
    assert bad.exit_code == 2 and "no topic named 'click'" in bad.output


def test_socrec_version_is_the_package_version() -> None:
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"socrec-online {metadata.version('socrec-online')}"


def test_docs_topics_links_every_shipped_schema() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "topics.md"
    text = doc.read_text(encoding="utf-8")
    for topic in TOPICS:
        link = f"](../socrec_online/schemas/{topic}.schema.json)"
        assert f"| `{topic}` |" in text and link in text, topic
        assert (doc.parent / link[2:-1]).resolve().is_file(), topic
    for reason in DeadLetterReason:
        assert f"`{reason.value}`" in text, reason

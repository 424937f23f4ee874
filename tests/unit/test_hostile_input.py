"""Property-based: whatever arrives, the worker dead-letters it with a reason or applies it.

Arbitrary bytes, and events near validity (each field valid, at or just past its bound, of another
JSON type, or missing; huge and tiny numbers, NaN and infinities; empty, long and odd unicode
strings, lone surrogates escaped in the JSON), go through the service path in process
(``fuzz/service_path.py``): decode and key check, the re-encoding for the engine process, the
engine, its table values and a rebuild from them. Nothing may raise past the dead-letter path,
every table value parses back within its bounds, a restart agrees with the live engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.service_path import KEY_MODES, ServicePath, join_input, path_settings
from socrec_online.events import INPUT_TOPICS, Event
from socrec_online.service.engine import Engine

S = path_settings()
PROPERTIES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
MISSING = object()

ID_EDGES = [
    "", " ", "\t\n", "u1", "u2", "i1", "i2", "é", "\x00", "\u200b", "\U0001f600", "\ufeff", "\uffff",
    "x" * S.max_id_chars, "x" * (S.max_id_chars + 1), "é" * S.max_id_chars,
]  # fmt: skip
TEXT_EDGES = [
    "", "   ", "love it", "this is awful", "x" * S.max_text_bytes, "x" * (S.max_text_bytes + 1),
    "é" * (S.max_text_bytes // 2), "é" * (S.max_text_bytes // 2 + 1), "\U0001f600" * (S.max_text_bytes // 4),
    "\U0001f600" * (S.max_text_bytes // 4 + 1), "\x00\x01\x1f", "\ud800", "a\udfffb",
]  # fmt: skip
NUMBER_EDGES = [
    0, -0.0, 1, -1, 0.5, 1e-300, 5e-324, 1e9, 1.7e9, 4.0e9, S.max_timestamp_s, S.max_timestamp_s + 1,
    S.max_dwell_ms, S.max_dwell_ms + 1, 1e20, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30,
    float("nan"), float("inf"), -float("inf"),
]  # fmt: skip

any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # lone surrogates included
ids = st.one_of(st.sampled_from(ID_EDGES), any_text)
texts = st.one_of(st.sampled_from(TEXT_EDGES), any_text)
numbers = st.one_of(st.sampled_from(NUMBER_EDGES), st.integers(), st.floats(), st.floats(0, 4.2e9))
any_json = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
GOOD_IDS = st.sampled_from(["u1", "u2", "u3", "i1", "i2", "i3", "é-ü", "\U0001f600"])
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text("abcdef", min_size=1, max_size=6), "user_id": GOOD_IDS, "item_id": GOOD_IDS,
    "target_id": GOOD_IDS, "author_id": st.none() | GOOD_IDS, "ts": st.floats(1.6e9, 1.8e9) | st.just(4.0e9),
    "dwell_ms": st.none() | st.integers(0, S.max_dwell_ms), "undo": st.booleans(),
    "text": st.sampled_from(["love it", "this is awful", "folk songs", "jazz", "é ü \U0001f600"]),
    "tags": st.lists(GOOD_IDS, max_size=S.max_tags),
}  # fmt: skip
"""Valid values from small pools, so events meet: clicks find their items, follows their users."""
EDGE: dict[str, st.SearchStrategy[Any]] = {
    "event_id": ids, "user_id": ids, "item_id": ids, "target_id": ids, "author_id": ids,
    "ts": numbers, "dwell_ms": numbers, "undo": st.none() | st.booleans(), "text": texts,
    "tags": st.lists(ids, max_size=S.max_tags + 1),
}  # fmt: skip
"""Values at and past each field's bounds."""
FIELDS = {
    "clicks": ("event_id", "user_id", "item_id", "ts", "dwell_ms"),
    "likes": ("event_id", "user_id", "item_id", "ts", "undo"),
    "comments": ("event_id", "user_id", "item_id", "ts", "text"),
    "follows": ("event_id", "user_id", "target_id", "ts", "undo"),
    "items": ("event_id", "item_id", "ts", "text", "author_id", "tags"),
    "profiles": ("event_id", "user_id", "ts", "text"),
    "queries": ("event_id", "user_id", "ts", "text"),
}


def encode(value: Any, how: int) -> bytes:
    """As different producers would: orjson, escaped ASCII JSON (NaN, lone surrogates as \\ud800),
    or raw UTF-8 that carries the surrogates as bytes (invalid UTF-8)."""
    if how == 0:
        try:
            return orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            pass
    if how == 2:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(topic, key mode, value) of an event whose every field is valid, at a bound, wrong or missing."""
    topic = draw(st.sampled_from(INPUT_TOPICS))
    d: dict[str, Any] = {}
    for name in FIELDS[topic]:
        how = draw(st.integers(0, 19))
        if how == 0:
            continue  # missing
        d[name] = draw(any_json if how == 1 else EDGE[name] if how < 4 else GOOD[name])
    if draw(st.integers(0, 9)) == 0:
        d[draw(any_text)] = draw(any_json)  # an unknown field
    value = draw(st.one_of(st.just(d), any_json)) if draw(st.integers(0, 19)) == 0 else d
    key_mode = draw(st.sampled_from(["owner", "owner", "owner", "none", "other"]))
    return topic, key_mode, encode(value, draw(st.sampled_from([0, 0, 0, 1, 2])))


@pytest.fixture(scope="module")
def path(encoder: Any) -> ServicePath:
    """A path that has applied the hostile seeds (fuzz corpus): real table values to start from."""
    p = ServicePath(S, encoder)
    for f in sorted((Path(__file__).parent / "fuzz_corpus").glob("seed-*")):
        p.feed(f.read_bytes())
    assert all(p.tables.values())
    return p


@pytest.fixture(scope="module", autouse=True)
def _no_heap_freeze() -> Iterator[None]:
    """Every restore ends with a full garbage collection (service/heap.py): 0.2 s, and beside the point here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("socrec_online.service.upkeep.freeze_long_lived", lambda: None)  # restore and compaction
        yield


@PROPERTIES
@given(topic=st.sampled_from(INPUT_TOPICS), key_mode=st.sampled_from(KEY_MODES), raw=st.binary(max_size=1100))
def test_arbitrary_bytes_are_a_dead_letter_or_an_applied_event(
    path: ServicePath, topic: str, key_mode: str, raw: bytes
) -> None:
    path.feed(join_input(topic, key_mode, raw))


@PROPERTIES
@given(batches=st.lists(st.lists(near_valid(), min_size=1, max_size=8), min_size=1, max_size=3))
def test_near_valid_events_are_dead_lettered_or_applied_and_a_restart_agrees(
    encoder: Any, batches: list[list[tuple[str, str, bytes]]]
) -> None:
    path = ServicePath(S, encoder)  # one per example: a failure replays on its own
    for batch in batches:
        accepted: list[Event] = []
        for topic, key_mode, raw in batch:
            got = path.decode(topic, key_mode, raw)
            if not isinstance(got, str):
                accepted.append(got)
        if accepted:
            path.apply(accepted)  # one micro-batch, as the agent hands it over
    path.check_restore()


def _state_values(path: ServicePath) -> st.SearchStrategy[dict[str, dict[str, Any]]]:
    """Table values as a changelog might hold them: the engine's own, with any field replaced."""
    real = {name: list(kv.values()) for name, kv in path.tables.items() if kv}

    @st.composite
    def value(draw: st.DrawFn, name: str) -> Any:
        if not real.get(name) or draw(st.integers(0, 4)) == 0:
            return draw(any_json)
        v = dict(draw(st.sampled_from(real[name])))
        v[draw(st.sampled_from(sorted(v)))] = draw(any_json)
        return v

    return st.fixed_dictionaries(
        {name: st.dictionaries(st.sampled_from(["u1", "u2", "i1", "x"]) | any_text, value(name), max_size=4)
         for name in Engine.TABLES}
    )  # fmt: skip


def test_a_rebuild_from_malformed_table_values_never_raises(path: ServicePath) -> None:
    """Engine.restore and Engine.upsert on what a corrupt or foreign changelog could hold."""

    @PROPERTIES
    @given(tables=_state_values(path))
    def rebuild(tables: dict[str, dict[str, Any]]) -> None:
        engine = path.new_engine()
        engine.restore(tables)
        engine.upsert(tables)
        engine.recommend_many(sorted(engine.activity)[:3])

    rebuild()

"""Every input refusal has a stable machine-readable reason, from a real malformed payload."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from socrec_online.events import Click, Comment, Follow, ItemPublished, Like, Profile, Query, to_dict
from socrec_online.service.decode import (
    DeadLetterReason,
    DecodeError,
    check_key,
    dead_letter_record,
    decode_event,
    decode_value,
)
from socrec_online.settings import Settings

S = Settings(max_text_bytes=64, max_payload_bytes=512, max_id_chars=16, max_tags=3)

GOOD = {
    "clicks": Click("e1", "u1", "i1", 1_700_000_000.5, 1200),
    "likes": Like("e2", "u1", "i1", 1_700_000_001.0, True),
    "comments": Comment("e3", "u1", "i1", 1_700_000_002, "love it ✨"),
    "follows": Follow("e4", "u1", "u2", 0.0),
    "items": ItemPublished("e5", "i9", 1_700_000_003.0, "jazz quartet", "u2", ("jazz",)),
    "profiles": Profile("e6", "u1", 1_700_000_004.0, "indie folk and cycling"),
    "queries": Query("e7", "u1", 1_700_000_005.0, "something about telescopes"),
}


def enc(d: dict) -> bytes:
    return orjson.dumps(d)


@pytest.mark.parametrize("topic", list(GOOD))
def test_valid_events_round_trip(topic: str) -> None:
    ev = GOOD[topic]
    got = decode_event(topic, enc(to_dict(ev)), S)
    assert got == ev
    assert type(got) is type(ev)


def test_unknown_fields_ignored_and_optional_fields_default() -> None:
    got = decode_event("clicks", enc({"event_id": "e", "user_id": "u", "item_id": "i", "ts": 5, "x": [1]}), S)
    assert got == Click("e", "u", "i", 5.0, None)
    got2 = decode_event(
        "items", enc({"event_id": "e", "item_id": "i", "ts": 1, "text": "t", "author_id": None}), S
    )
    assert isinstance(got2, ItemPublished) and got2.author_id is None and got2.tags == ()


CLICK = {"event_id": "e", "user_id": "u", "item_id": "i", "ts": 1.0}

BAD: list[tuple[str, bytes | None, DeadLetterReason]] = [
    ("clicks", None, DeadLetterReason.empty_payload),
    ("clicks", b"", DeadLetterReason.empty_payload),
    ("clicks", enc({**CLICK, "pad": "x" * 600}), DeadLetterReason.payload_too_large),
    ("clicks", b'{"event_id": "\xff\xfe", "user_id": "u"}', DeadLetterReason.bad_utf8),
    (
        "clicks",
        b'{"event_id": "\\ud800", "user_id": "u", "item_id": "i", "ts": 1}',
        DeadLetterReason.bad_utf8,
    ),
    ("clicks", b'{"event_id": "e", ', DeadLetterReason.bad_json),
    ("clicks", b'{"event_id": "e"} trailing', DeadLetterReason.bad_json),
    ("clicks", b"[1, 2]", DeadLetterReason.not_object),
    ("clicks", b'"just a string"', DeadLetterReason.not_object),
    ("clicks", enc({"event_id": "e", "user_id": "u", "ts": 1}), DeadLetterReason.missing_field),
    ("clicks", enc({**CLICK, "item_id": None}), DeadLetterReason.missing_field),
    ("clicks", enc({**CLICK, "ts": "yesterday"}), DeadLetterReason.wrong_type),
    ("clicks", enc({**CLICK, "ts": True}), DeadLetterReason.wrong_type),
    ("clicks", enc({**CLICK, "user_id": 42}), DeadLetterReason.wrong_type),
    ("clicks", enc({**CLICK, "dwell_ms": "long"}), DeadLetterReason.wrong_type),
    ("clicks", enc({**CLICK, "dwell_ms": 1.5}), DeadLetterReason.wrong_type),
    ("likes", enc({**CLICK, "undo": 1}), DeadLetterReason.wrong_type),
    (
        "items",
        enc({"event_id": "e", "item_id": "i", "ts": 1, "text": "t", "tags": "jazz"}),
        DeadLetterReason.wrong_type,
    ),
    (
        "items",
        enc({"event_id": "e", "item_id": "i", "ts": 1, "text": "t", "tags": [1]}),
        DeadLetterReason.wrong_type,
    ),
    ("comments", enc({**CLICK, "text": ["a"]}), DeadLetterReason.wrong_type),
    ("clicks", b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": NaN}', DeadLetterReason.not_finite),
    (
        "clicks",
        b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": Infinity}',
        DeadLetterReason.not_finite,
    ),
    (
        "clicks",
        b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": -Infinity}',
        DeadLetterReason.not_finite,
    ),
    (
        "clicks",
        b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": 1e999}',
        DeadLetterReason.not_finite,
    ),
    ("clicks", enc({**CLICK, "dwell_ms": -5}), DeadLetterReason.out_of_range),
    ("clicks", enc({**CLICK, "dwell_ms": 1e20}), DeadLetterReason.out_of_range),  # past 64-bit ints
    ("clicks", enc({**CLICK, "dwell_ms": S.max_dwell_ms + 1}), DeadLetterReason.out_of_range),
    (
        "items",
        enc({"event_id": "e", "item_id": "i", "ts": 1, "text": "t", "tags": ["a", "b", "c", "d"]}),
        DeadLetterReason.out_of_range,
    ),
    ("clicks", enc({**CLICK, "user_id": ""}), DeadLetterReason.empty_id),
    ("clicks", enc({**CLICK, "item_id": "   "}), DeadLetterReason.empty_id),
    ("clicks", enc({**CLICK, "user_id": "u" * 17}), DeadLetterReason.id_too_long),
    ("comments", enc({**CLICK, "text": "x" * 65}), DeadLetterReason.text_too_long),
    ("comments", enc({**CLICK, "text": "é" * 33}), DeadLetterReason.text_too_long),  # 66 bytes, 33 chars
    (
        "items",
        enc({"event_id": "e", "item_id": "i", "ts": 1, "text": "t", "tags": ["t" * 17]}),
        DeadLetterReason.text_too_long,
    ),
    ("queries", enc({"event_id": "e", "user_id": "u", "ts": 1, "text": "  "}), DeadLetterReason.empty_text),
    (
        "follows",
        enc({"event_id": "e", "user_id": "u", "target_id": "u", "ts": 1}),
        DeadLetterReason.self_follow,
    ),
    ("clicks", enc({**CLICK, "ts": 1_700_000_000_000}), DeadLetterReason.bad_timestamp),  # milliseconds
    ("clicks", enc({**CLICK, "ts": -1}), DeadLetterReason.bad_timestamp),
    ("purchases", enc(CLICK), DeadLetterReason.unknown_topic),
]


@pytest.mark.parametrize(("topic", "raw", "reason"), BAD, ids=[f"{r}-{i}" for i, (_, _, r) in enumerate(BAD)])
def test_bad_payload_reason(topic: str, raw: bytes | None, reason: DeadLetterReason) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_event(topic, raw, S)
    assert exc.value.reason is reason
    assert exc.value.detail


def test_every_decode_reason_is_exercised() -> None:
    # the engine, check_key, the breaker (streams/breaker.py), the engine's state bounds
    produced_elsewhere = {
        DeadLetterReason.unknown_item,
        DeadLetterReason.wrong_key,
        DeadLetterReason.processing_failed,
        DeadLetterReason.state_too_large,
    }
    assert {r for _, _, r in BAD} == set(DeadLetterReason) - produced_elsewhere


def test_an_accepted_event_re_encodes_and_the_engine_process_accepts_it_at_the_size_limit() -> None:
    """The engine process validates the worker's re-encoding, which can be longer than the record."""
    s = Settings(max_payload_bytes=1024, max_text_bytes=2048)
    head, tail = b'{"event_id":"e","item_id":"i","ts":1e9,"text":"', b'"}'
    raw = head + b"x" * (s.max_payload_bytes - len(head) - len(tail)) + tail
    assert len(raw) == s.max_payload_bytes
    ev = decode_event("items", raw, s)
    crossing = orjson.dumps([["items", to_dict(ev)]])  # what RemoteEngine.step sends
    (topic, value), = orjson.loads(crossing)
    assert len(orjson.dumps(value)) > s.max_payload_bytes  # 1e9 came back as 1000000000.0
    assert decode_value(topic, value, s) == ev
    click = decode_event("clicks", enc({**CLICK, "dwell_ms": S.max_dwell_ms}), S)
    assert decode_value("clicks", orjson.loads(orjson.dumps(to_dict(click))), S) == click


@pytest.mark.parametrize(
    ("event", "key", "ok"),
    [
        (GOOD["clicks"], b"u1", True),
        (GOOD["clicks"], None, True),  # DESIGN.md does not forbid a null key: the value's id owns it
        (GOOD["clicks"], b"u2", False),
        (GOOD["clicks"], b"i1", False),
        (GOOD["follows"], b"u2", False),  # keyed by the follower, not the target
        (GOOD["items"], b"i9", True),
        (GOOD["items"], b"u2", False),  # items are keyed by the item id, not the author
        (GOOD["profiles"], b"u1\xff", False),
        (GOOD["queries"], b"", False),
    ],
)
def test_a_mis_keyed_event_is_refused_as_wrong_key(event: Any, key: bytes | None, ok: bool) -> None:
    if ok:
        check_key(event, key)
        return
    with pytest.raises(DecodeError) as exc:
        check_key(event, key)
    assert exc.value.reason is DeadLetterReason.wrong_key and exc.value.detail


def test_fuzzed_bytes_raise_only_decode_error() -> None:
    rng = random.Random(0)
    base = enc({"event_id": "e", "user_id": "u", "item_id": "i", "ts": 1.0, "text": "hi", "target_id": "v"})
    for _ in range(2000):
        b = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(b))
            if op < 0.4:
                b[pos] = rng.randrange(256)
            elif op < 0.7:
                del b[pos]
            else:
                b.insert(pos, rng.randrange(256))
        topic = rng.choice(list(GOOD))
        try:
            decode_event(topic, bytes(b), S)
        except DecodeError as e:
            assert isinstance(e.reason, DeadLetterReason)


def test_dead_letter_record_is_bounded_and_escaped() -> None:
    payload = b'{"text": "caf\xc3\xa9 \xff\xfe"}' + b"x" * 100
    rec = dead_letter_record("clicks", 3, 42, DeadLetterReason.bad_utf8, "e" * 1000, payload, 24)
    assert set(rec) >= {"topic", "partition", "offset", "reason", "error", "payload"}
    assert rec["topic"] == "clicks" and rec["partition"] == 3 and rec["offset"] == 42
    assert rec["reason"] == "bad_utf8"
    assert len(rec["error"]) <= 500
    assert rec["payload"].startswith('{"text": "café \\xff\\xfe')
    assert rec["truncated"] is True and rec["payload_bytes"] == len(payload)
    assert orjson.loads(orjson.dumps(rec)) == rec
    none = dead_letter_record("clicks", None, None, "empty_payload", "no value", None, 24)
    assert none["payload"] is None and none["truncated"] is False

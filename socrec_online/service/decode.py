"""Raw Kafka bytes to typed events, with a machine-readable reason for every refusal.

A worker must never die on input, and an operator must be able to tell *why* an event was
dropped without reading logs, so every failure is a :class:`DecodeError` carrying a
:class:`DeadLetterReason`. Checks are ordered cheapest-first and the happy path is one
``orjson.loads`` plus a few ``type(...) is`` tests (bools are ints in Python, so
``isinstance`` would let ``true`` pass as a timestamp).

Every number an event keeps is bounded here (``ts`` by ``max_timestamp_s``, ``dwell_ms`` by
``max_dwell_ms``), so an accepted event always re-encodes as JSON (orjson refuses integers past
64 bits) for the engine process, which validates the same fields again with :func:`decode_value`.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from typing import Any

import orjson

from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile, Query, key_of
from socrec_online.settings import Settings
from socrec_online.types import SCHEMA_VERSION

__all__ = ["DeadLetterReason", "DecodeError", "check_key", "dead_letter_record", "decode_event", "decode_value"]

_ERROR_CHARS = 500


class DeadLetterReason(enum.StrEnum):
    empty_payload = "empty_payload"
    payload_too_large = "payload_too_large"
    bad_utf8 = "bad_utf8"
    bad_json = "bad_json"
    not_object = "not_object"
    missing_field = "missing_field"
    wrong_type = "wrong_type"
    not_finite = "not_finite"
    out_of_range = "out_of_range"
    empty_id = "empty_id"
    id_too_long = "id_too_long"
    text_too_long = "text_too_long"
    empty_text = "empty_text"
    self_follow = "self_follow"
    bad_timestamp = "bad_timestamp"
    unknown_topic = "unknown_topic"
    unknown_item = "unknown_item"
    wrong_key = "wrong_key"
    processing_failed = "processing_failed"
    state_too_large = "state_too_large"


class DecodeError(ValueError):
    """An input the service refuses; ``reason`` is stable, ``detail`` is for humans."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _fail(reason: DeadLetterReason, detail: str) -> DecodeError:
    return DecodeError(reason, detail)


def _type_name(v: object) -> str:
    if v is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "object"}.get(
        type(v), type(v).__name__
    )


class _Reader:
    """Field accessors over one parsed object (kept tiny: this runs 2,000+ times a second)."""

    __slots__ = ("d", "s")

    def __init__(self, d: dict[str, Any], s: Settings) -> None:
        self.d = d
        self.s = s

    def _get(self, name: str) -> Any:
        v = self.d.get(name)
        if v is None:
            raise _fail(DeadLetterReason.missing_field, f"field {name!r} is required")
        return v

    def id(self, name: str, optional: bool = False) -> str | None:
        v = self.d.get(name) if optional else self._get(name)
        if v is None:
            return None
        if type(v) is not str:
            raise _fail(DeadLetterReason.wrong_type, f"field {name!r}: expected str, got {_type_name(v)}")
        if not v or v.isspace():
            raise _fail(DeadLetterReason.empty_id, f"field {name!r} is empty")
        if len(v) > self.s.max_id_chars:
            raise _fail(
                DeadLetterReason.id_too_long, f"field {name!r}: {len(v)} chars > {self.s.max_id_chars}"
            )
        return v

    def req_id(self, name: str) -> str:
        v = self.id(name)
        assert v is not None
        return v

    def ts(self) -> float:
        v = self._get("ts")
        t = type(v)
        if t is not float and t is not int:
            raise _fail(DeadLetterReason.wrong_type, f"field 'ts': expected number, got {_type_name(v)}")
        f = float(v)
        if not math.isfinite(f):
            raise _fail(DeadLetterReason.not_finite, "field 'ts' is not finite")
        if f < 0.0 or f > self.s.max_timestamp_s:
            raise _fail(
                DeadLetterReason.bad_timestamp,
                f"field 'ts': {f!r} outside [0, {self.s.max_timestamp_s:g}] seconds since the epoch",
            )
        return f

    def text(self, name: str = "text") -> str:
        v = self._get(name)
        if type(v) is not str:
            raise _fail(DeadLetterReason.wrong_type, f"field {name!r}: expected str, got {_type_name(v)}")
        limit = self.s.max_text_bytes
        # len(str) <= UTF-8 bytes <= 4 * len(str): only encode in the ambiguous band.
        if len(v) > limit or (len(v) * 4 > limit and len(v.encode("utf-8", "surrogatepass")) > limit):
            raise _fail(DeadLetterReason.text_too_long, f"field {name!r} longer than {limit} bytes")
        return v

    def flag(self, name: str) -> bool:
        v = self.d.get(name, False)
        if v is None:
            return False
        if type(v) is not bool:
            raise _fail(DeadLetterReason.wrong_type, f"field {name!r}: expected bool, got {_type_name(v)}")
        return v

    def dwell_ms(self) -> int | None:
        v = self.d.get("dwell_ms")
        if v is None:
            return None
        if type(v) is float:
            if not math.isfinite(v):
                raise _fail(DeadLetterReason.not_finite, "field 'dwell_ms' is not finite")
            if not v.is_integer():
                raise _fail(DeadLetterReason.wrong_type, "field 'dwell_ms': expected int, got float")
        elif type(v) is not int:
            raise _fail(DeadLetterReason.wrong_type, f"field 'dwell_ms': expected int, got {_type_name(v)}")
        if v < 0:
            raise _fail(DeadLetterReason.out_of_range, "field 'dwell_ms' is negative")
        if v > self.s.max_dwell_ms:
            raise _fail(DeadLetterReason.out_of_range, f"field 'dwell_ms': {v:g} > {self.s.max_dwell_ms} ms")
        return int(v)

    def tags(self) -> tuple[str, ...]:
        v = self.d.get("tags")
        if v is None:
            return ()
        if type(v) is not list:
            raise _fail(DeadLetterReason.wrong_type, f"field 'tags': expected list, got {_type_name(v)}")
        if len(v) > self.s.max_tags:
            raise _fail(DeadLetterReason.out_of_range, f"field 'tags': {len(v)} tags > {self.s.max_tags}")
        for t in v:
            if type(t) is not str:
                raise _fail(
                    DeadLetterReason.wrong_type, f"field 'tags': expected str items, got {_type_name(t)}"
                )
            if len(t) > self.s.max_id_chars:
                raise _fail(
                    DeadLetterReason.text_too_long, f"a tag is longer than {self.s.max_id_chars} chars"
                )
        return tuple(v)


def _click(r: _Reader) -> Event:
    return Click(r.req_id("event_id"), r.req_id("user_id"), r.req_id("item_id"), r.ts(), r.dwell_ms())


def _like(r: _Reader) -> Event:
    return Like(r.req_id("event_id"), r.req_id("user_id"), r.req_id("item_id"), r.ts(), r.flag("undo"))


def _comment(r: _Reader) -> Event:
    return Comment(r.req_id("event_id"), r.req_id("user_id"), r.req_id("item_id"), r.ts(), r.text())


def _follow(r: _Reader) -> Event:
    e = Follow(r.req_id("event_id"), r.req_id("user_id"), r.req_id("target_id"), r.ts(), r.flag("undo"))
    if e.user_id == e.target_id:
        raise _fail(DeadLetterReason.self_follow, f"user {e.user_id[:64]!r} cannot follow themselves")
    return e


def _item(r: _Reader) -> Event:
    return ItemPublished(
        r.req_id("event_id"),
        r.req_id("item_id"),
        r.ts(),
        r.text(),
        r.id("author_id", optional=True),
        r.tags(),
    )


def _profile(r: _Reader) -> Event:
    return Profile(r.req_id("event_id"), r.req_id("user_id"), r.ts(), r.text())


def _query(r: _Reader) -> Event:
    e = Query(r.req_id("event_id"), r.req_id("user_id"), r.ts(), r.text())
    if not e.text.strip():
        raise _fail(DeadLetterReason.empty_text, "a query needs some words")
    return e


_DECODERS: dict[str, Callable[[_Reader], Event]] = {
    "clicks": _click,
    "likes": _like,
    "comments": _comment,
    "follows": _follow,
    "items": _item,
    "profiles": _profile,
    "queries": _query,
}


class _NonFinite(Exception):
    pass


def _reject_constant(name: str) -> float:
    raise _NonFinite(name)


def _classify_parse_error(raw: bytes, exc: Exception) -> DecodeError:
    """Slow path, only for bad input: tell invalid UTF-8 and NaN/Infinity apart from plain bad JSON."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _fail(DeadLetterReason.bad_utf8, f"invalid UTF-8 at byte {e.start}")
    msg = str(exc)
    if "infinity" in msg.lower():
        return _fail(DeadLetterReason.not_finite, "a number overflows to infinity")
    try:
        json.loads(raw, parse_constant=_reject_constant)
    except _NonFinite as e:
        return _fail(DeadLetterReason.not_finite, f"non-finite number {e.args[0]}")
    except (ValueError, RecursionError):
        pass
    else:
        if "surrogate" in msg:
            return _fail(DeadLetterReason.bad_utf8, "string escapes encode a lone surrogate")
    return _fail(DeadLetterReason.bad_json, msg[:200])


def decode_event(topic: str, raw: bytes | None, settings: Settings) -> Event:
    """Validate and decode one message value of an input topic (name without the prefix).

    Raises :class:`DecodeError` for any input it refuses, and nothing else.
    """
    decoder = _DECODERS.get(topic)
    if decoder is None:
        raise _fail(DeadLetterReason.unknown_topic, f"no input topic named {topic[:100]!r}")
    if not raw:
        raise _fail(DeadLetterReason.empty_payload, "message has no value")
    if len(raw) > settings.max_payload_bytes:
        raise _fail(DeadLetterReason.payload_too_large, f"{len(raw)} bytes > {settings.max_payload_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _classify_parse_error(bytes(raw), e) from None
    return decode_value(topic, data, settings)


def decode_value(topic: str, data: Any, settings: Settings) -> Event:
    """Validate one already parsed message value (the fields only: no payload size, no UTF-8).

    The engine process checks the events the worker hands it with this: their re-encoding is not
    the record the worker read (``1e9`` comes back as ``1000000000.0``, defaults are filled in), so
    the payload bound applies once, to the record as it arrived, in :func:`decode_event`.
    Raises :class:`DecodeError`, and nothing else.
    """
    decoder = _DECODERS.get(topic)
    if decoder is None:
        raise _fail(DeadLetterReason.unknown_topic, f"no input topic named {topic[:100]!r}")
    if type(data) is not dict:
        raise _fail(DeadLetterReason.not_object, f"expected a JSON object, got {_type_name(data)}")
    return decoder(_Reader(data, settings))


def check_key(event: Event, key: bytes | None) -> None:
    """Refuse (``wrong_key``) an event whose Kafka key is not its owner's id (DESIGN.md: the user id;
    the item id for ``items``).

    State is owned per key: the partition of the event's key decides which worker holds that user's
    (or item's) tables, so a mis-keyed event would change state another worker owns. It is
    dead-lettered rather than re-routed: routing would need the producer's partitioner here, and
    the producer that sent it is the one to fix. A record without a key (null) is accepted:
    DESIGN.md does not forbid one, and the id in the value is what the state is keyed by.
    """
    if key is None:
        return
    want = key_of(event)
    if key != want.encode("utf-8"):
        got = bytes(key[:80]).decode("utf-8", "backslashreplace")
        raise _fail(DeadLetterReason.wrong_key, f"key {got!r} is not the event's owner id {want[:80]!r}")


def dead_letter_record(
    topic: str,
    partition: int | None,
    offset: int | None,
    reason: DeadLetterReason | str,
    error: str,
    payload: bytes | None,
    limit_bytes: int,
) -> dict[str, Any]:
    """The ``dead-letters`` value of DESIGN.md: where it came from, why, and a bounded copy of it."""
    text: str | None = None
    size = 0
    if payload is not None:
        size = len(payload)
        text = bytes(payload[: max(limit_bytes, 0)]).decode("utf-8", "backslashreplace")
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "reason": str(reason),
        "error": error[:_ERROR_CHARS],
        "payload": text,
        "payload_bytes": size,
        "truncated": size > max(limit_bytes, 0),
        "schema_version": SCHEMA_VERSION,
    }

"""The topics' JSON contract as JSON Schema (draft 2020-12), one schema per topic value.

Input schemas are generated from the event dataclasses of :mod:`socrec_online.events`: their
fields are the properties, fields without a default are required, and each field's bounds are
the decoder's (:mod:`socrec_online.service.decode`) for the given settings, so a producer can
validate before sending and be refused for the same reasons the worker would refuse. The
output schemas (``recommendations``, ``dead-letters``, ``model-updates``) describe what the
service writes. The package ships them generated at the default settings
(``socrec_online/schemas/<topic>.schema.json``); ``socrec schema`` prints them for the
effective settings.

What JSON Schema cannot say, and the decoder still checks: the whole value's size in bytes
(``SOCREC_MAX_PAYLOAD_BYTES``), a text's size in UTF-8 bytes (the schema bounds characters),
valid UTF-8 and finite numbers (a JSON parser's job), a self-follow (``user_id`` equal to
``target_id``), and items not yet known to the worker. Unknown properties are allowed in
every schema: a producer may send more, and a consumer must accept fields added later.

``SCHEMA_VERSION`` changes only when a change is not additive (a field removed, renamed,
retyped or newly required); output records carry it as ``schema_version``.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from importlib import resources
from pathlib import Path
from typing import Any

from socrec_online.events import EVENT_OF_TOPIC, INPUT_TOPICS
from socrec_online.service.decode import DeadLetterReason
from socrec_online.settings import Settings
from socrec_online.types import SCHEMA_VERSION

__all__ = [
    "DIALECT",
    "OUTPUT_TOPICS",
    "SCHEMA_VERSION",
    "TOPICS",
    "UnknownTopicError",
    "dumps",
    "shipped_schema",
    "topic_schema",
    "topic_schemas",
    "write_schemas",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
OUTPUT_TOPICS: tuple[str, ...] = ("recommendations", "dead-letters", "model-updates")
TOPICS: tuple[str, ...] = (*INPUT_TOPICS, *OUTPUT_TOPICS)
SCHEMA_PACKAGE_DIR = "schemas"


_NOT_BLANK = r"\S"  # JSON Schema patterns are unanchored: "contains a non-whitespace character"


class UnknownTopicError(KeyError):
    """A topic name that is not part of the contract."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.topic = topic

    def __str__(self) -> str:
        return f"no topic named {self.topic!r}; topics: {', '.join(TOPICS)}"


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _id(s: Settings, what: str, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "minLength": 1,
        "maxLength": s.max_id_chars,
        "pattern": _NOT_BLANK,
        "description": f"{what}: not blank, at most {s.max_id_chars} characters (SOCREC_MAX_ID_CHARS).",
    }


def _field_schema(topic: str, name: str, s: Settings) -> dict[str, Any]:
    """The decoder's rule for one event field, as JSON Schema."""
    if name == "ts":
        return {
            "type": "number",
            "minimum": 0,
            "maximum": _number(s.max_timestamp_s),
            "description": "Event time in seconds since the epoch (not milliseconds; SOCREC_MAX_TIMESTAMP_S).",
        }
    if name in ("event_id", "user_id", "item_id", "target_id", "author_id"):
        what = {
            "event_id": "Unique id of this event (replays with the same id are applied once)",
            "user_id": "The acting user's id",
            "item_id": "The item's id",
            "target_id": "The followed user's id (not user_id itself)",
            "author_id": "The author's user id",
        }[name]
        return _id(s, what, nullable=name == "author_id")
    if name == "text":
        out: dict[str, Any] = {
            "type": "string",
            "maxLength": s.max_text_bytes,
            "description": f"UTF-8 text of at most {s.max_text_bytes} bytes (SOCREC_MAX_TEXT_BYTES); the "
            "schema bounds characters, the worker also counts bytes.",
        }
        if topic == "queries":
            out["pattern"] = _NOT_BLANK
            out["description"] = "The request in words (not blank). " + out["description"]
        return out
    if name == "undo":
        return {"type": ["boolean", "null"], "default": False, "description": "true takes the action back."}
    if name == "dwell_ms":
        return {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": s.max_dwell_ms,
            "description": f"Time spent on the item in milliseconds (a number with no fraction), at most "
            f"{s.max_dwell_ms} (SOCREC_MAX_DWELL_MS).",
        }
    if name == "tags":
        return {
            "type": ["array", "null"],
            "maxItems": s.max_tags,
            "items": {"type": "string", "maxLength": s.max_id_chars},
            "description": f"At most {s.max_tags} tags (SOCREC_MAX_TAGS) of at most {s.max_id_chars} characters.",
        }
    raise ValueError(f"{topic}.{name}: no schema rule for this event field (add one to contract.py)")


_INPUT_DOC = {
    "clicks": "A user opened an item. Key: the user id.",
    "likes": "A user liked an item (undo: took the like back). Key: the user id.",
    "comments": "A user commented on an item. Key: the user id.",
    "follows": "user_id follows target_id (undo: unfollows). Key: the user id.",
    "items": "A new item in the catalogue. Key: the item id.",
    "profiles": "A user's declared interests (the cold-start questionnaire). Key: the user id.",
    "queries": 'A request in words, answered on recommendations with kind "query". Key: the user id.',
}


def _header(topic: str, doc: str) -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "$id": f"urn:socrec-online:topic:{topic}:v{SCHEMA_VERSION}",
        "title": f"socrec-online {topic} value",
        "description": doc,
        "x-schema-version": SCHEMA_VERSION,
        "type": "object",
    }


def _input_schema(topic: str, s: Settings) -> dict[str, Any]:
    cls = EVENT_OF_TOPIC[topic]
    props = {f.name: _field_schema(topic, f.name, s) for f in fields(cls)}
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    extra = f" The whole value is at most {s.max_payload_bytes} bytes (SOCREC_MAX_PAYLOAD_BYTES)."
    if topic == "follows":
        extra += " user_id and target_id differ."
    return {
        **_header(topic, _INPUT_DOC[topic] + extra),
        "properties": props,
        "required": required,
        "additionalProperties": True,
    }


_VERSION_FIELD = {
    "const": SCHEMA_VERSION,
    "description": "Version of this contract; absent on records written before it was stamped (same as 1).",
}


def _recommendations() -> dict[str, Any]:
    entry = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "Item id (user id for kind users)."},
            "score": {"type": "number", "description": "Higher is better; comparable within one list."},
            "reason": {"type": "string", "description": "Why it is recommended, for people."},
        },
        "required": ["id", "score", "reason"],
        "additionalProperties": True,
    }
    return {
        **_header(
            "recommendations",
            "Top-k for one user, published when the user's events (or those of people they follow) "
            "change it, and as the answer to a query. Key: the user id.",
        ),
        "properties": {
            "user_id": {"type": "string"},
            "ts": {"type": "number", "description": "When it was published, seconds since the epoch."},
            "model_version": {"type": "string", "description": '"zero-shot" or a snapshot version.'},
            "kind": {"enum": ["items", "users", "query"], "description": "users = who to follow."},
            "items": {"type": "array", "items": entry, "description": "Best first."},
            "source_event_id": {
                "type": ["string", "null"],
                "description": "event_id of the input that caused it (the query's for kind query).",
            },
            "rec_id": {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "Stable id: the same for a list re-published by a replay after a crash "
                "(same source event, user and kind), so consumers can drop duplicates.",
            },
            "schema_version": _VERSION_FIELD,
        },
        "required": ["user_id", "ts", "model_version", "kind", "items", "source_event_id"],
        "additionalProperties": True,
    }


def _dead_letters() -> dict[str, Any]:
    return {
        **_header(
            "dead-letters",
            "An input record the worker refused, with a machine-readable reason and a bounded copy. "
            "Key: the refused record's key.",
        ),
        "properties": {
            "topic": {"type": "string", "description": "Input topic, without the prefix."},
            "partition": {"type": ["integer", "null"]},
            "offset": {"type": ["integer", "null"]},
            "reason": {
                "type": "string",
                "examples": [r.value for r in DeadLetterReason],
                "description": "Stable machine-readable reason (new ones may be added).",
            },
            "error": {"type": "string", "description": "Detail for people."},
            "payload": {
                "type": ["string", "null"],
                "description": "The value's first SOCREC_DEAD_LETTER_PAYLOAD_BYTES bytes (invalid UTF-8 escaped).",
            },
            "payload_bytes": {"type": "integer", "minimum": 0, "description": "Size of the whole value."},
            "truncated": {"type": "boolean"},
            "schema_version": _VERSION_FIELD,
        },
        "required": ["topic", "partition", "offset", "reason", "error", "payload"],
        "additionalProperties": True,
    }


def _model_updates() -> dict[str, Any]:
    return {
        **_header("model-updates", "A snapshot announcement: every worker loads the named version."),
        "properties": {
            "version": {"type": "string", "minLength": 1},
            "path": {"type": "string"},
            "metrics": {"type": "object", "description": "The evaluation gate's scores."},
            "ts": {"type": "number"},
        },
        "required": ["version"],
        "additionalProperties": True,
    }


def topic_schema(topic: str, settings: Settings | None = None) -> dict[str, Any]:
    """JSON Schema of one topic's value for these settings (defaults when None)."""
    s = settings if settings is not None else Settings.model_construct()
    if topic in EVENT_OF_TOPIC:
        return _input_schema(topic, s)
    builders = {"recommendations": _recommendations, "dead-letters": _dead_letters, "model-updates": _model_updates}
    if topic not in builders:
        raise UnknownTopicError(topic)
    return builders[topic]()


def topic_schemas(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    return {t: topic_schema(t, settings) for t in TOPICS}


def dumps(schema: dict[str, Any]) -> str:
    """The one JSON rendering (files and the CLI): stable key order, two-space indent, newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped_schema(topic: str) -> dict[str, Any]:
    """The schema shipped in the package (generated at the default settings)."""
    if topic not in TOPICS:
        raise UnknownTopicError(topic)
    path = resources.files("socrec_online") / SCHEMA_PACKAGE_DIR / f"{topic}.schema.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def write_schemas(directory: Path, settings: Settings | None = None) -> list[Path]:
    """Write ``<topic>.schema.json`` for every topic (how the shipped files are made)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for topic, schema in topic_schemas(settings).items():
        path = directory / f"{topic}.schema.json"
        path.write_text(dumps(schema), encoding="utf-8")
        out.append(path)
    return out

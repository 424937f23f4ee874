"""What ``socrec produce`` and ``socrec tail`` need that is not a Kafka client: line checks, pretty records.

Kept here, in the Kafka-free library, so ``socrec produce --check`` validates without a broker and
both halves are unit-tested without one; ``streams/console.py`` does the sending and the reading.
A line is checked by the worker's own decoder (:func:`decode_event`), so what ``produce`` accepts
is what the worker accepts (but ``unknown_item``, which depends on the stream), and its key is
set by the contract (:func:`key_of`: the user id, the item id on ``items``), never by the user.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from socrec_online.events import INPUT_TOPICS, key_of
from socrec_online.service.decode import DecodeError, decode_event
from socrec_online.settings import Settings

__all__ = ["CheckedLine", "check_lines", "format_record", "invalid_line_report"]


@dataclass(frozen=True, slots=True)
class CheckedLine:
    """One input line: its 1-based number, and either its key and value or the decoder's refusal."""

    lineno: int
    value: bytes
    key: str | None = None
    error: DecodeError | None = None


def check_lines(topic: str, lines: Iterable[bytes], settings: Settings) -> Iterator[CheckedLine]:
    """Each non-blank line of ``lines`` decoded as a ``topic`` value (base name), lazily.

    Lines are numbered as a text editor shows them (blank lines count but are not yielded), so a
    report points at the line to fix. Raises ValueError for a topic that takes no input events.
    """
    if topic not in INPUT_TOPICS:
        raise ValueError(f"{topic!r} is not an input topic; input topics: {', '.join(INPUT_TOPICS)}")
    for n, line in enumerate(lines, 1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            event = decode_event(topic, raw, settings)
        except DecodeError as e:
            yield CheckedLine(n, raw, error=e)
            continue
        yield CheckedLine(n, raw, key=key_of(event))


def invalid_line_report(line: CheckedLine) -> str:
    """``line 4: missing_field: field 'user_id' is required`` (the dead-letter reason, then why)."""
    assert line.error is not None
    return f"line {line.lineno}: {line.error.reason}: {line.error.detail}"


def _when(ts: Any) -> str:
    if type(ts) not in (int, float):
        return "?"
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return repr(ts)


def _recommendation(v: dict[str, Any]) -> list[str]:
    head = (
        f"user {v.get('user_id')}  kind {v.get('kind')}  model {v.get('model_version')}  "
        f"rec_id {v.get('rec_id', '-')}  at {_when(v.get('ts'))}"
    )
    rows = [head]
    got = v.get("items")
    items: list[Any] = got if isinstance(got, list) else []
    for i, it in enumerate(items, 1):
        if not isinstance(it, dict):
            rows.append(f"  {i:>2}. {it!r}")
            continue
        score = it.get("score")
        s = f"{score:.3f}" if type(score) in (int, float) else str(score)
        rows.append(f"  {i:>2}. {it.get('id')}  {s}  {it.get('reason', '')}")
    if not items:
        rows.append("  (no items)")
    return rows


def _dead_letter(v: dict[str, Any]) -> list[str]:
    where = f"{v.get('topic')}[{v.get('partition')}]@{v.get('offset')}"
    return [f"{v.get('reason')} from {where}: {v.get('error')}", f"  payload: {v.get('payload')!r}"]


def format_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> str:
    """A record for people: a ``topic[partition]@offset key`` header, then the value by topic (base name).

    ``recommendations`` shows the user, kind, model and each item with its reason; ``dead-letters``
    the reason and where the refused record came from; anything else its JSON on one line. A value
    that is not JSON is shown as bytes (tail is how people find such records).
    """
    k = "null" if key is None else bytes(key).decode("utf-8", "backslashreplace")
    header = f"{topic}[{partition}]@{offset} key {k}"
    try:
        v = json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError):
        return f"{header}\n  not JSON ({len(value or b'')} bytes): {bytes(value or b'')[:200]!r}"
    if topic == "recommendations" and isinstance(v, dict):
        body = _recommendation(v)
    elif topic == "dead-letters" and isinstance(v, dict):
        body = _dead_letter(v)
    else:
        body = [json.dumps(v, ensure_ascii=False)]
    return "\n".join([header, *("  " + b for b in body)])

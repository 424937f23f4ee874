"""``socrec produce`` line checks and ``socrec tail`` formatting, without a broker."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from socrec_online.console import check_lines, format_record, invalid_line_report
from socrec_online.settings import Settings
from streams.cli import app

runner = CliRunner()

CLICK = b'{"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1700000000}'
ITEM = b'{"event_id": "e2", "item_id": "i9", "ts": 1700000000, "text": "jazz", "author_id": "u2"}'


def test_valid_lines_get_the_contract_key_and_keep_their_bytes() -> None:
    [click] = check_lines("clicks", [CLICK + b"\n"], Settings())
    assert (click.lineno, click.key, click.value, click.error) == (1, "u1", CLICK, None)
    [item] = check_lines("items", [ITEM + b"\r\n"], Settings())
    assert item.key == "i9"  # the item id on items, not the author


def test_invalid_lines_are_numbered_with_their_reason_and_blank_lines_count() -> None:
    lines = [CLICK, b"", b'{"event_id": "e3", "item_id": "i1", "ts": 1}', b"not json", b"\xff\xfe", CLICK]
    got = list(check_lines("clicks", lines, Settings()))
    assert [g.lineno for g in got] == [1, 3, 4, 5, 6]
    bad = [invalid_line_report(g) for g in got if g.error is not None]
    assert bad[0] == "line 3: missing_field: field 'user_id' is required"
    assert bad[1].startswith("line 4: bad_json: ") and bad[2].startswith("line 5: bad_utf8: ")
    with pytest.raises(ValueError, match="not an input topic"):
        list(check_lines("recommendations", [CLICK], Settings()))


def test_a_recommendation_prints_user_kind_items_and_reasons() -> None:
    rec = {
        "user_id": "alice",
        "ts": 1700000000.5,
        "model_version": "zero-shot",
        "kind": "items",
        "items": [{"id": "post-1", "score": 0.9123, "reason": "liked by someone you follow"}],
        "source_event_id": "e1",
        "rec_id": "ab" * 16,
        "schema_version": 1,
        "new_field": [1],
    }
    text = format_record("recommendations", 2, 7, b"alice", json.dumps(rec).encode())
    assert text.splitlines()[0] == "recommendations[2]@7 key alice"
    assert "user alice  kind items  model zero-shot  rec_id " + "ab" * 16 in text
    assert "1. post-1  0.912  liked by someone you follow" in text
    dl = {"topic": "clicks", "partition": 0, "offset": 3, "reason": "bad_json", "error": "x", "payload": "{"}
    assert "bad_json from clicks[0]@3: x" in format_record(
        "dead-letters", 0, 1, None, json.dumps(dl).encode()
    )
    assert "not JSON (2 bytes)" in format_record("clicks", 0, 0, b"k", b"\xff{")
    assert format_record("clicks", 0, 0, b"u1", CLICK).endswith(
        '"user_id": "u1", "item_id": "i1", "ts": 1700000000}'
    )


def test_produce_check_reports_lines_and_fails_without_a_broker() -> None:
    stdin = b"\n".join([CLICK, b'{"event_id": "e3", "user_id": "u1", "item_id": "i1", "ts": 1e15}', CLICK])
    res = runner.invoke(app, ["produce", "clicks", "--check"], input=stdin)
    assert res.exit_code == 1
    assert "line 2: bad_timestamp: " in res.output and "2 valid lines, 1 invalid" in res.output
    ok = runner.invoke(app, ["produce", "clicks", "--check"], input=CLICK)
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["produce", "recommendations", "--check"], input=CLICK).exit_code == 2

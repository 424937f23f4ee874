"""The hostile records of issue 19's first paragraph, as fuzz inputs with the outcome each must have.

Sixty records over clicks, likes, comments and follows (bad JSON, invalid UTF-8, ``[]``, ``null``,
``42``, missing user or item, an integer item id, ``"ts": "yesterday"``, ``NaN``, a 300 KB comment,
a self-follow, an empty user id, ``dwell_ms`` 1e20, ``ts`` 4e9), keyed by the user id, plus the
item they refer to and one good click. Written as ``seed-NN-<topic>-<outcome>`` files (``fuzz/
service_path.py``'s input format), in the order they are fed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fuzz.service_path import join_input

T = 1_700_000_000.0
TOPICS = ("clicks", "likes", "comments", "follows")


def _event(topic: str, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"event_id": f"h-{topic}-{len(kw)}", "user_id": "ua", "ts": T}
    if topic == "follows":
        d["target_id"] = "ub"
    else:
        d["item_id"] = "i1"
    if topic == "comments":
        d["text"] = "nice"
    d.update(kw)
    return {k: v for k, v in d.items() if v is not _DROP}


_DROP = object()


def _target(topic: str) -> str:
    return "target_id" if topic == "follows" else "item_id"


KINDS: list[tuple[str, Callable[[str], bytes], Callable[[str], str]]] = [
    ("bad_json", lambda t: b'{"event_id": "b1", "user_id": "ua", ', lambda t: "bad_json"),
    ("bad_utf8", lambda t: b'{"event_id": "\xff\xfe", "user_id": "ua"}', lambda t: "bad_utf8"),
    ("empty_list", lambda t: b"[]", lambda t: "not_object"),
    ("null", lambda t: b"null", lambda t: "not_object"),
    ("number", lambda t: b"42", lambda t: "not_object"),
    ("no_user", lambda t: orjson.dumps(_event(t, user_id=_DROP)), lambda t: "missing_field"),
    ("no_item", lambda t: orjson.dumps(_event(t, **{_target(t): _DROP})), lambda t: "missing_field"),
    ("int_item", lambda t: orjson.dumps(_event(t, **{_target(t): 7})), lambda t: "wrong_type"),
    ("ts_yesterday", lambda t: orjson.dumps(_event(t, ts="yesterday")), lambda t: "wrong_type"),
    ("ts_nan", lambda t: orjson.dumps(_event(t)).replace(b'"ts":', b'"ts":NaN,"x":'), lambda t: "not_finite"),
    (
        "huge",
        lambda t: orjson.dumps(_event(t, text="x" * 300_000) if t == "comments" else _event(t, pad="y" * 2000)),
        lambda t: "payload_too_large",
    ),
    (
        "self",
        lambda t: orjson.dumps(_event(t, target_id="ua") if t == "follows" else _event(t, user_id="ub")),
        lambda t: "self_follow" if t == "follows" else "wrong_key",  # ub's event under another key
    ),
    ("empty_user", lambda t: orjson.dumps(_event(t, user_id="")), lambda t: "empty_id"),
    (
        "dwell_1e20",
        lambda t: orjson.dumps(
            {"clicks": _event(t, dwell_ms=1e20), "likes": _event(t, undo="yes"), "comments": _event(t, text=5),
             "follows": _event(t, undo=1)}[t]
        ),
        lambda t: "out_of_range" if t == "clicks" else "wrong_type",
    ),
    ("ts_4e9", lambda t: orjson.dumps(_event(t, event_id=f"far-{t}", ts=4.0e9)), lambda t: "applied"),
]


def hostile_records() -> list[tuple[str, str, bytes, str]]:
    """(topic, key mode, value, expected outcome): the item, the sixty, then a good click."""
    item = orjson.dumps({"event_id": "h-item", "item_id": "i1", "ts": T, "text": "folk songs", "author_id": "uc"})
    out = [("items", "owner", item, "applied")]
    for topic in TOPICS:
        for name, value, outcome in KINDS:
            key_mode = "other" if name == "self" and topic != "follows" else "owner"
            out.append((topic, key_mode, value(topic), outcome(topic)))
    good = orjson.dumps({"event_id": "h-good", "user_id": "ud", "item_id": "i1", "ts": T + 5})
    out.append(("clicks", "owner", good, "applied"))
    return out


def write_seeds(folder: Path) -> list[Path]:
    """Write every hostile record as ``seed-NN-<topic>-<outcome>`` (replaces earlier seeds)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    paths = []
    for n, (topic, key_mode, value, outcome) in enumerate(hostile_records()):
        p = folder / f"seed-{n:02d}-{topic}-{outcome}"
        p.write_bytes(join_input(topic, key_mode, value))
        paths.append(p)
    return paths


if __name__ == "__main__":
    import sys

    print(len(write_seeds(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/unit/fuzz_corpus"))), "seeds")

"""The agent's loop without Kafka: raw bytes in, dead letters and recommendations out, restart in between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import to_dict, topic_of
from socrec_online.service.decode import DecodeError, dead_letter_record, decode_event
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

POISON: list[tuple[str, bytes, str]] = [
    ("clicks", b"{not json", "bad_json"),
    ("likes", b'{"event_id": "x1", "user_id": "u1", "item_id": "i1", "ts": NaN}', "not_finite"),
    ("follows", b'{"event_id": "x2", "user_id": "u1", "target_id": "u1", "ts": 1}', "self_follow"),
    ("clicks", b'{"event_id": "x3", "user_id": "u1", "item_id": "no-such-item", "ts": 1}', "unknown_item"),
    ("comments", b'{"event_id": "x4", "user_id": "u1", "item_id": "i1", "ts": 1, "text": 5}', "wrong_type"),
    ("profiles", b"\xff\xfe\x00", "bad_utf8"),
]


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path)))


def run(
    engine: Engine, settings: Settings, stream: list[tuple[str, bytes]], tables: dict[str, dict[str, Any]]
) -> Any:
    """What a stream agent does per micro-batch of (topic, raw value) messages."""
    dead: list[dict[str, Any]] = []
    published: list[dict[str, Any]] = []
    for start in range(0, len(stream), 64):
        chunk = stream[start : start + 64]
        events, origin = [], []
        for offset, (topic, raw) in enumerate(chunk, start):
            try:
                events.append(decode_event(topic, raw, settings))
                origin.append((topic, offset, raw))
            except DecodeError as e:
                dead.append(dead_letter_record(topic, 0, offset, e.reason, e.detail, raw, 256))
        r = engine.learn_many(events)
        for idx, reason, detail in r.rejected:
            topic, offset, raw = origin[idx]
            dead.append(dead_letter_record(topic, 0, offset, reason, detail, raw, 256))
        for name, upd in r.table_updates.items():
            tables[name].update(orjson.loads(orjson.dumps(upd)))  # as a JSON changelog would
        published += engine.recommend_many(r.touched_users, source_event_ids=r.source_event_ids)
        published += engine.answer_queries(r.queries)
    return dead, published


def test_poison_is_dead_lettered_good_events_served_and_a_restart_changes_nothing(encoder: Any) -> None:
    ds = generate(SyntheticConfig(n_users=40, n_items=60, interactions_per_user=6, seed=5))
    events = list(ds.events())
    stream = [(topic_of(e), orjson.dumps(to_dict(e))) for e in events]
    for k, (topic, raw, _) in enumerate(POISON):  # interleave poison with the good events
        stream.insert(len(stream) // 2 + 7 * k, (topic, raw))
    # a dataset replay (past timestamps) among poison whose far-future times move the clock: no retention
    settings = Settings(device="cpu", user_ttl_s=0.0, item_retention_s=0.0)
    tables: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}
    live = Engine(settings, encoder)
    dead, published = run(live, settings, stream, tables)

    dead.sort(key=lambda d: d["offset"])
    assert [d["reason"] for d in dead] == [r for _, _, r in POISON]
    assert all(d["topic"] == t and d["offset"] is not None for d, (t, _, _) in zip(dead, POISON, strict=True))
    items = [p for p in published if p["kind"] == "items"]
    assert {p["user_id"] for p in items} >= {ds.users.id(u) for u in set(ds.stream.user.tolist())}
    for p in items:  # nobody is ever recommended what they already engaged with (at publish time)
        assert p["model_version"] == "zero-shot" and p["source_event_id"]
        assert len(p["items"]) <= settings.top_k
    assert live.stats()["items"] == 60 and live.stats()["edges"] == len(ds.social_src)

    # restart: a new worker recovers from the (JSON round-tripped) tables; a replay of the tail changes nothing
    restarted = Engine(settings, encoder)
    restarted.restore(tables)
    users = sorted(live.activity)
    strip = lambda ps: [(p["user_id"], p["kind"], [e["id"] for e in p["items"]]) for p in ps]
    assert strip(restarted.recommend_many(users)) == strip(live.recommend_many(users))
    replay_dead, replay_pub = run(restarted, settings, stream[-200:], tables)
    assert all(
        d["reason"] in {"bad_json", "not_finite", "self_follow", "unknown_item", "wrong_type", "bad_utf8"}
        for d in replay_dead
    )
    assert [p for p in replay_pub if p["kind"] != "query"] == []  # every replayed event was a duplicate
    assert strip(restarted.recommend_many(users)) == strip(live.recommend_many(users))

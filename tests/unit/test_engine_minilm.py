"""With the real text tower, words alone are enough: a profile-only user gets matching items."""

from __future__ import annotations

from pathlib import Path

import pytest

from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import ItemPublished, Profile, Query
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings


@pytest.fixture(scope="module")
def engine(minilm_path: Path) -> tuple[Engine, dict[str, str]]:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    ds = generate(SyntheticConfig(n_users=30, n_items=144, seed=3))
    items = [e for e in ds.events() if isinstance(e, ItemPublished)]
    eng = Engine(
        Settings(device="cpu", top_k=10), TextEncoder(TextEncoderConfig(model_path=str(minilm_path)))
    )
    eng.learn_many(items)
    return eng, {e.item_id: e.tags[0] for e in items}


def test_profile_only_user_gets_topic_items(engine: tuple[Engine, dict[str, str]]) -> None:
    eng, topic = engine
    r = eng.learn_many(
        [Profile("p-new", "newbie", 1_700_000_000.0, "I love cycling: my bike, gravel rides, the tour")]
    )
    assert r.touched_users == ["newbie"]
    recs = next(p for p in eng.recommend_many(["newbie"]) if p["kind"] == "items")["items"]
    assert len(recs) == 10
    hits = [e for e in recs if topic[e["id"]] == "cycling"]
    assert len(hits) >= 7, [(e["id"], topic[e["id"]]) for e in recs]
    assert all(e["reason"].startswith("matches your interests") for e in hits)
    assert any(":" in e["reason"] for e in hits)  # names the overlapping profile words


def test_query_in_words_finds_the_topic(engine: tuple[Engine, dict[str, str]]) -> None:
    eng, topic = engine
    out = eng.answer_queries([Query("q-1", "someone", 1_700_000_000.0, "bebop saxophone and jazz trumpet")])
    assert out[0]["kind"] == "query" and out[0]["source_event_id"] == "q-1"
    got = [topic[e["id"]] for e in out[0]["items"]]
    assert got.count("jazz") >= 7, got


def test_from_settings_serves_zero_shot_without_a_snapshot(tmp_path: Path) -> None:
    eng = Engine.from_settings(Settings(device="cpu", snapshot_dir=tmp_path / "none"))
    assert eng.model_version == "zero-shot" and eng.dim == 384

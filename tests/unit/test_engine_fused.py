"""A promoted fused snapshot is served (its version on every payload) with the same filters and restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from socrec_online.events import Click, Follow, ItemPublished, Like, Query
from socrec_online.service.engine import Engine
from socrec_online.service.model_slot import load_current_model
from socrec_online.settings import Settings

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path)))


def test_promoted_snapshot_is_served_and_survives_restore(encoder: Any, tmp_path: Path) -> None:
    from socrec_online import snapshot
    from socrec_online.models.recommender import FusedRecommender, RecommenderConfig, save_recommender

    torch.manual_seed(0)
    model = FusedRecommender(RecommenderConfig(n_users=3, n_items=4, text_dim=encoder.dim, dim=16))
    info = save_recommender(tmp_path, model, ["alice", "bob", "carol"], ["i0", "i1", "i2", "i3"], {})
    settings = Settings(device="cpu", snapshot_dir=tmp_path)
    assert load_current_model(settings, encoder) == (None, "zero-shot")  # nothing promoted yet
    snapshot.promote(tmp_path, info.version)
    loaded, version = load_current_model(settings, encoder)
    assert version == info.version and loaded is not None

    eng = Engine(settings, encoder, model=loaded, model_version=version)
    texts = ["jazz sax", "bike climb", "pasta sauce", "galaxy telescope", "football derby"]
    batch = [
        ItemPublished(f"p{i}", f"i{i}", T0 + i, t) for i, t in enumerate(texts)
    ]  # i4: unknown to the model
    batch += [
        Follow("f1", "bob", "alice", T0),
        Like("l1", "alice", "i2", T0 + 10),
        Click("c1", "bob", "i0", T0 + 11),
    ]
    r = eng.learn_many(batch)
    recs = eng.recommend_many(["bob", "dora"])
    assert {p["model_version"] for p in recs} == {info.version}
    bob = next(p for p in recs if p["user_id"] == "bob" and p["kind"] == "items")["items"]
    assert {e["id"] for e in bob} == {"i1", "i2", "i3", "i4"}  # seen i0 filtered, new item i4 scored
    assert next(e for e in bob if e["id"] == "i2")["reason"] == "liked by 1 person you follow"
    scores = [e["score"] for e in bob]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)

    tables: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}
    for name, upd in r.table_updates.items():
        tables[name].update(upd)
    again, v2 = load_current_model(settings, encoder)
    restored = Engine(settings, encoder, model=again, model_version=v2)
    restored.restore(tables)
    bob2 = next(p for p in restored.recommend_many(["bob"]) if p["kind"] == "items")["items"]
    assert [e["id"] for e in bob2] == [e["id"] for e in bob]
    assert [e["score"] for e in bob2] == pytest.approx(scores, abs=1e-4)

    eng.swap_model(None, "whatever")
    assert eng.recommend_many(["bob"], who_to_follow=False)[0]["model_version"] == "zero-shot"


def test_a_model_without_the_scoring_api_is_refused(encoder: Any) -> None:
    eng = Engine(Settings(device="cpu"), encoder)
    eng.swap_model(object(), "v-bad")
    eng.learn_many([ItemPublished("p", "i", T0, "x")])
    assert eng.model_version == "zero-shot"


def test_queries_are_answered_by_the_fused_model(encoder: Any, tmp_path: Path) -> None:
    from socrec_online.models.recommender import FusedRecommender, RecommenderConfig
    from socrec_online.service.fused import FusedScorer

    torch.manual_seed(1)
    model = FusedRecommender(RecommenderConfig(n_users=1, n_items=1, text_dim=encoder.dim, dim=16))
    eng = Engine(Settings(device="cpu"), encoder)
    eng.swap_model(FusedScorer(model, ["alice"], ["i0"]), "v-q")
    texts = ["jazz sax", "bike climb", "pasta sauce"]
    eng.learn_many([ItemPublished(f"p{i}", f"i{i}", T0 + i, t) for i, t in enumerate(texts)])
    out = eng.answer_queries([Query("q1", "alice", T0 + 5, "bike")])
    assert out[0]["model_version"] == "v-q" and out[0]["kind"] == "query" and len(out[0]["items"]) == 3
    assert out[0]["items"][0]["reason"].startswith("matches your request")

"""Retention under a trained fused model: after a sweep (and after a compaction) the model scores
live users exactly like an engine restored from the live table values with the same snapshot, so an
evicted user's likes and follows and an evicted item's engagements stop shaping anyone's list."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _engine_texts import T0, TEXTS
from test_retention import apply

from socrec_online.events import Click, Event, Follow, ItemPublished, Like
from socrec_online.models.recommender import FusedRecommender, RecommenderConfig
from socrec_online.service import retention
from socrec_online.service.engine import Engine
from socrec_online.service.fused import FusedScorer
from socrec_online.settings import Settings

TTL = 5000.0
LATER = T0 + TTL + 500  # past the user TTL and the first items' TTL + retention


def fused(encoder: Any) -> FusedScorer:
    """The same random fused model every call, trained on u0..u5 and i0..i9."""
    torch.manual_seed(0)
    cfg = RecommenderConfig(n_users=6, n_items=10, text_dim=encoder.dim, dim=16)
    return FusedScorer(FusedRecommender(cfg).eval(), [f"u{k}" for k in range(6)], [f"i{k}" for k in range(10)])


def make(encoder: Any) -> Engine:
    settings = Settings(
        device="cpu", top_k=20, who_to_follow_k=0, user_ttl_s=TTL, item_ttl_s=3000.0,
        item_retention_s=1000.0, retention_sweep_s=100.0,
    )  # fmt: skip
    return Engine(settings, encoder, model=fused(encoder), model_version="v-test")


def stream() -> list[list[Event]]:
    """Old items; users u0..u2 go quiet, u3..u5 stay (their values keep naming the old items, and
    they follow the quiet ones); new items the live users act on after the TTL."""
    old = [ItemPublished(f"p{k}", f"i{k}", T0 + k, TEXTS[k % 8], author_id="zed") for k in range(10)]
    early: list[Event] = []
    for k in range(6):  # u0..u2 go quiet, u3..u5 stay active
        early += [Like(f"l{k}", f"u{k}", f"i{k}", T0 + 20 + k), Click(f"c{k}", f"u{k}", f"i{(k + 3) % 10}", T0 + 30 + k)]
        early.append(Follow(f"f{k}", f"u{k}", f"u{(k + 3) % 6}", T0 + 40 + k))
    middle = [Click(f"k{k}", f"u{k}", "i7", T0 + 3000 + k) for k in range(3, 6)]  # u3..u5 stay live
    new = [ItemPublished(f"n{k}", f"j{k}", LATER + k, TEXTS[(k + 3) % 8], author_id="zed") for k in range(8)]
    live: list[Event] = []
    for k in range(3, 6):
        live += [Like(f"m{k}", f"u{k}", f"j{k}", LATER + 20 + k), Click(f"d{k}", f"u{k}", f"j{k + 1}", LATER + 30 + k)]
    return [old, early, middle, new, live]


def lists(engine: Engine, users: list[str]) -> dict[str, list[tuple[str, float]]]:
    return {p["user_id"]: [(e["id"], e["score"]) for e in p["items"]] for p in engine.recommend_many(users, now=LATER + 100)}


def assert_same(got: dict[str, list[tuple[str, float]]], want: dict[str, list[tuple[str, float]]], when: str) -> None:
    assert got.keys() == want.keys()
    for u, items in got.items():
        assert [i for i, _ in items] == [i for i, _ in want[u]], (when, u)
        assert [s for _, s in items] == pytest.approx([s for _, s in want[u]], abs=1e-5), (when, u)


def test_fused_scores_after_eviction_and_compaction_equal_a_restore_of_the_live_values(
    encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "COMPACT_FRACTION", 1.0)  # compact when this test says so
    eng = make(encoder)
    mirror = make(encoder)  # another worker's engine: takes the values and deletions over (upsert)
    tables: dict[str, dict[str, Any]] = {name: {} for name in Engine.TABLES}
    for batch in stream():
        updates = eng.step(batch)["table_updates"]
        mirror.upsert(updates)
        apply(tables, updates)  # as the worker writes them: None deletes
    assert eng.model_version == "v-test"
    assert {"u0", "u1", "u2"}.isdisjoint(eng.activity) and not any(i.startswith("i") for i in eng.item_state)
    assert "i3" in eng.activity["u3"].recent and "u0" in eng.social["u3"].following
    fresh = make(encoder)
    fresh.restore(tables)
    live = ["u3", "u4", "u5"]
    want = lists(fresh, live)
    assert all(want[u] for u in live)
    assert mirror.model_version == "v-test"
    assert_same(lists(mirror, live), want, "a mirror that took the deletions over")
    for when in ("after the sweep", "a model attached after the sweep", "after a compaction"):
        if when == "a model attached after the sweep":  # a hot swap builds from the engine's graph
            eng.swap_model(fused(encoder), "v-test-2")
        if when == "after a compaction":
            eng.compact()
        assert_same(lists(eng, live), want, when)

"""The fused scorer's per-batch shortcuts (patched adjacency, k-hop/spmm propagation, cached item
vectors, merged catch-up, cosine of the picks only) serve what a from-scratch computation gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from socrec_online.events import Click, Follow, ItemPublished, Like
from socrec_online.models.gnn import build_graph
from socrec_online.models.recommender import FusedRecommender, RecommenderConfig
from socrec_online.service.batch import GraphChanges
from socrec_online.service.engine import Engine
from socrec_online.service.fused import FusedScorer, capture_graph
from socrec_online.settings import Settings

T0 = 1_700_000_000.0
TOPICS = ["jazz sax quartet", "mountain bike climb", "pasta tomato sauce", "galaxy telescope night", "football derby goal"]


def _scorer(encoder: Any) -> FusedScorer:
    """A random fused model trained on u0..u5 and i0..i9; the stream adds users and items it never saw."""
    torch.manual_seed(0)
    cfg = RecommenderConfig(n_users=6, n_items=10, text_dim=encoder.dim, dim=16)
    return FusedScorer(FusedRecommender(cfg).eval(), [f"u{k}" for k in range(6)], [f"i{k}" for k in range(10)])


def _stream(seed: int, n_batches: int) -> list[list[Any]]:
    """Small batches: items (some re-texted), likes and unlikes, clicks, follows and unfollows."""
    rng = np.random.default_rng(seed)
    batches: list[list[Any]] = [[ItemPublished(f"p{k}", f"i{k}", T0 + k, f"{TOPICS[k % 5]} {k}") for k in range(14)]]
    n = 0
    for b in range(n_batches):
        evs: list[Any] = []
        for _ in range(4):
            n += 1
            ts = T0 + 100 + n
            u, i, v = f"u{rng.integers(0, 9)}", f"i{rng.integers(0, 14)}", f"u{rng.integers(0, 9)}"
            kind = int(rng.integers(0, 6))
            if kind == 0:
                evs.append(Follow(f"e{n}", u, v, ts, undo=bool(rng.integers(0, 3) == 0)))
            elif kind == 1:
                evs.append(Like(f"e{n}", u, i, ts, undo=True))
            elif kind == 2:
                evs.append(Click(f"e{n}", u, i, ts))
            else:
                evs.append(Like(f"e{n}", u, i, ts))
        if b % 5 == 4:  # a re-texted item and a brand-new one
            evs.append(ItemPublished(f"r{b}", f"i{b % 14}", T0 + 100 + n, f"{TOPICS[(b + 2) % 5]} again {b}"))
            evs.append(ItemPublished(f"n{b}", f"i{14 + b}", T0 + 100 + n, f"{TOPICS[b % 5]} new {b}"))
        batches.append(evs)
    return batches


def _reference(scorer: FusedScorer, eng: Engine) -> tuple[Tensor, list[str], list[str]]:
    """Logits (users, items) from scratch: the engine's graph and texts, one full LightGCN pass, the head's
    vectors for every row, one product (the training path: no serving cache involved)."""
    st = scorer.state
    assert st is not None
    view = eng.store
    g = capture_graph(view)
    users, items = st.users.all_ids, st.items.all_ids
    urow = {u: r for r, u in enumerate(users)}
    irow = {i: r for r, i in enumerate(items)}
    graph = build_graph(
        len(users), len(items),
        np.array([urow[u] for u in g.users], np.int64), np.array([irow[i] for i in g.items], np.int64), None,
        np.array([urow[u] for u in g.follow_src], np.int64), np.array([urow[u] for u in g.follow_dst], np.int64),
        st.model.cfg.gnn(),
    )  # fmt: skip
    text = torch.zeros(len(items), view.dim)
    for r, i in enumerate(items):
        if (er := view.items.get(i)) is not None:
            text[r] = view.item_emb[er]
    interest = torch.zeros(len(users), view.dim)
    for r, u in enumerate(users):
        if (er := view.users.get(u)) is not None:
            interest[r] = view.interest[er]
    with torch.no_grad():
        uv, iv = st.model.full_vectors(graph, text, interest)
        return st.model.score_many(uv, iv), users, items


def _served(scorer: FusedScorer, eng: Engine) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """What the scorer serves for every engine user against every engine item (engine rows)."""
    rows = np.arange(len(eng.users), dtype=np.int64)
    cand = np.arange(len(eng.items), dtype=np.int64)
    return rows, cand, scorer.score_users_items(eng.store, rows, cand, eng.clock)


def _assert_matches_reference(scorer: FusedScorer, eng: Engine) -> None:
    rows, cand, got = _served(scorer, eng)
    ref, users, items = _reference(scorer, eng)
    ur = {u: r for r, u in enumerate(users)}
    ir = {i: r for r, i in enumerate(items)}
    want = ref[[ur[u] for u in eng.users.ids(rows.tolist())]][:, [ir[i] for i in eng.items.ids(cand.tolist())]]
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    k = min(5, len(cand))
    assert torch.equal(got.topk(k, dim=1).indices, want.topk(k, dim=1).indices)


def _served_stream(encoder: Any, seed: int, n_batches: int = 6) -> tuple[FusedScorer, Engine]:
    """An engine serving a fresh scorer, after a short stream."""
    scorer = _scorer(encoder)
    eng = Engine(Settings(device="cpu"), encoder, model=scorer, model_version="v-test")
    for evs in _stream(seed, n_batches):
        eng.learn_many(evs)
    return scorer, eng


@pytest.mark.parametrize("full_fraction", [0.1, 1.1])  # the default choice / always row-local gathers
def test_serving_after_many_small_batches_equals_a_computation_from_scratch(encoder: Any, full_fraction: float) -> None:
    scorer = _scorer(encoder)
    eng = Engine(Settings(device="cpu"), encoder, model=scorer, model_version="v-test")
    batches = _stream(0, 30)
    eng.learn_many(batches[0])
    eng.recommend_many(["u0"])  # attaches the scorer
    assert scorer.state is not None and scorer.state._prop is not None
    scorer.state._prop.full_fraction = full_fraction
    for evs in batches[1:]:
        eng.learn_many(evs)
    assert len(eng.users) > 6 and len(eng.items) > 10  # users and items the model never saw
    _assert_matches_reference(scorer, eng)


def test_a_new_edge_and_a_new_text_show_in_the_next_scores(encoder: Any) -> None:
    scorer, eng = _served_stream(encoder, 1)
    eng.recommend_many(["u0"])
    _, _, before = _served(scorer, eng)

    eng.learn_many([Like("x1", "u7", "i3", T0 + 900), Follow("x2", "u8", "u7", T0 + 901)])
    _, _, after = _served(scorer, eng)
    u7, u8 = eng.users.row("u7"), eng.users.row("u8")
    assert not torch.allclose(after[u7], before[u7], atol=1e-4)  # the liker's vector moved
    assert not torch.allclose(after[u8], before[u8], atol=1e-4)  # so did the new follower's
    _assert_matches_reference(scorer, eng)

    eng.learn_many([ItemPublished("x3", "i5", T0 + 902, "galaxy telescope night sky stars")])
    _, _, retexted = _served(scorer, eng)
    i5 = eng.items.row("i5")
    assert not torch.allclose(retexted[:, i5], after[:, i5], atol=1e-4)  # the item's cached vector was refreshed
    _assert_matches_reference(scorer, eng)


def test_catch_up_in_one_flush_equals_batch_by_batch(encoder: Any) -> None:
    scorer = _scorer(encoder)
    eng = Engine(Settings(device="cpu"), encoder, model=scorer, model_version="v-test")
    batches = _stream(2, 12)
    for evs in batches[:4]:
        eng.learn_many(evs)
    eng.recommend_many(["u0"])
    late = _scorer(encoder)
    late.build(capture_graph(eng.store))  # a hot swap's copy of the graph, built while batches go on
    recorded: list[GraphChanges] = []
    learn = scorer.learn_batch
    scorer.learn_batch = lambda view, ch: (recorded.append(ch), learn(view, ch))[1]  # type: ignore[method-assign]
    for evs in batches[4:]:
        eng.learn_many(evs)
    assert len(recorded) == len(batches) - 4
    late.catch_up(eng.store, recorded)
    _, _, live = _served(scorer, eng)
    _, _, caught = _served(late, eng)
    assert torch.allclose(live, caught, atol=1e-4)
    _assert_matches_reference(late, eng)


def test_the_text_evidence_of_a_models_picks_is_their_cosine(encoder: Any) -> None:
    scorer, eng = _served_stream(encoder, 3)
    rows = np.arange(len(eng.users), dtype=np.int64)
    q = eng.scorer.user_vectors(rows)
    top = eng.scorer.top(rows, q, eng.clock, 4, scorer)
    picked = top.rows >= 0
    assert picked.any()
    cos = np.einsum("bd,bkd->bk", q.numpy(), eng.store.item_emb[torch.from_numpy(np.maximum(top.rows, 0))].numpy())
    expect = eng.settings.zs_weight_text * cos
    assert np.allclose(top.c_text[picked], expect[picked], atol=1e-5)

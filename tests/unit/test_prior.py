"""The popularity term: beta * log(1 + item's users) on every logit, picked on validation, served live."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _blocks import block_setting

from socrec_online.eval.metrics import evaluate_full_ranking
from socrec_online.models.ensemble import assemble
from socrec_online.models.gnn import InteractionGraph
from socrec_online.models.prior import PRIOR_GRID, PRIOR_KEY, prior_on_valid
from socrec_online.models.recommender import (
    FusedRecommender,
    RecommenderConfig,
    load_recommender,
    save_recommender,
)
from socrec_online.models.serving import ServingState
from socrec_online.models.train import TrainConfig, fit


@pytest.fixture(scope="module")
def setting():  # type: ignore[no-untyped-def]
    return block_setting()


def _model(ds, kind: str = "fused") -> FusedRecommender:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    m = FusedRecommender(RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind=kind, dim=8,  # type: ignore[arg-type]
                                           text_dim=16, tau=0.2, graph_half=kind == "fused"))
    if kind == "fused":
        m.set_text_mix(0.4)
    return m.eval()


def test_item_degree_counts_each_items_distinct_users() -> None:
    g = InteractionGraph(3, 4)
    g.add_interactions(np.array([0, 0, 1, 2]), np.array([1, 1, 1, 3]))  # a repeat is one user
    g.add_social(np.array([0]), np.array([1]))  # a follow is no item's user
    assert g.item_degree().tolist() == [0.0, 2.0, 0.0, 1.0]
    g.remove_interactions(np.array([1, 1]), np.array([1, 2]))  # (1, 2) never existed
    assert g.item_degree().tolist() == [0.0, 1.0, 0.0, 1.0]
    g.add_interactions(np.array([2]), np.array([6]))  # a new item row
    assert g.item_degree(torch.tensor([6, 3, 5])).tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("kind", ["fused", "gnn"])
def test_the_term_adds_beta_log_users_to_every_logit(setting, kind: str) -> None:  # type: ignore[no-untyped-def]
    ds, _, text, interest, graph = setting
    m = _model(ds, kind)
    with torch.no_grad():
        base = m.score_many(*m.full_vectors(graph, text, interest))
        m.set_pop_prior(-0.3)
        got = m.score_many(*m.full_vectors(graph, text, interest))
        # training and fine-tuning score without it
        plain = m.score_many(*m.full_vectors(graph, text, interest, prior=False))
    want = base - 0.3 * torch.log1p(graph.item_degree())
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.equal(plain, base)
    assert not torch.equal(got.argsort(dim=1), base.argsort(dim=1))


def test_a_user_the_model_knows_nothing_of_gets_no_term(setting) -> None:  # type: ignore[no-untyped-def]
    ds, _, text, _, graph = setting
    m = _model(ds)
    m.set_pop_prior(-0.5)
    with torch.no_grad():
        uv = m.user_vectors(None, torch.zeros(1, 16))  # no graph row, no interest
        iv = m.item_vectors(text, item_users=graph.item_degree())
    assert torch.count_nonzero(m.score_many(uv, iv)) == 0


def test_serving_adds_the_term_from_the_live_graph(setting, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds, split, text, interest, _ = setting
    m = _model(ds)
    m.set_pop_prior(-0.2)
    info = save_recommender(tmp_path, m, ds.users.all_ids, ds.items.all_ids, {})
    back, *_ = load_recommender(info.path)
    assert back.cfg.pop_prior == pytest.approx(-0.2)
    st = ServingState(back, ds.users.all_ids, ds.items.all_ids, item_text=text)
    half = len(split.train) // 2
    for part in (slice(0, half), slice(half, None)):  # two micro-batches: degrees grow incrementally
        st.learn_interactions(ds.users.ids(split.train.user[part].tolist()), ds.items.ids(split.train.item[part].tolist()))
        st.flush()
    st.learn_follows(ds.users.ids(ds.social_src.tolist()), ds.users.ids(ds.social_dst.tolist()))
    st.flush()
    rows = torch.arange(ds.n_users)
    with torch.no_grad():
        served = st.score_many(st.user_vectors(rows, interest))
        batch = back.score_many(*back.full_vectors(st.graph, text, interest))
    assert torch.allclose(served, batch, atol=1e-4)
    counts = np.bincount(split.train.item, minlength=ds.n_items)
    assert st.item_vectors()[:, -1].tolist() == pytest.approx(np.log1p(counts).tolist(), abs=1e-5)


def test_the_weight_is_picked_on_validation_and_scores_as_picked(setting) -> None:  # type: ignore[no-untyped-def]
    ds, split, text, _, _ = setting
    tcfg = TrainConfig(epochs=10, batch_users=16, eval_every=5, patience=2, progress=False, seed=0)
    fitted = fit(ds, split, RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind="gnn", dim=8,
                                              text_dim=16), tcfg, text)
    before = fitted.result.best_valid["ndcg@10"]
    kept = prior_on_valid(fitted, split)
    beta = kept.model.cfg.pop_prior
    assert beta in PRIOR_GRID and kept.result.best_valid[PRIOR_KEY] == beta
    assert kept.result.best_valid["ndcg@10"] >= before - 1e-9
    with torch.no_grad():
        uv, iv = kept.model.full_vectors(kept.graph, kept.item_text, kept.interest)
    m = evaluate_full_ranking(lambda ub: kept.model.score_many(uv[ub], iv), split.n_users, split.n_items,
                              (split.train,), split.valid)
    assert m["ndcg@10"] == pytest.approx(kept.result.best_valid["ndcg@10"], abs=1e-6)


def test_an_ensemble_takes_its_term_after_assembly(setting) -> None:  # type: ignore[no-untyped-def]
    ds, *_ = setting
    a, b = _model(ds, "gnn"), _model(ds, "gnn")
    b.set_pop_prior(0.1)
    with pytest.raises(ValueError, match="popularity"):
        assemble([a, b], [0.5, 0.5])

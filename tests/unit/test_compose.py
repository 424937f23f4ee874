"""The kept fused model is the GNN validation would pick with the text added on top (``models/compose.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from _blocks import block_setting

from socrec_online.eval.harness import select_width
from socrec_online.eval.metrics import evaluate_full_ranking
from socrec_online.models import compose
from socrec_online.models.compose import TEXT_EVIDENCE, compose_on_valid, halves_of
from socrec_online.models.ensemble import GRAPH_SHARE_KEY, SHARE_KEY
from socrec_online.models.prior import PRIOR_KEY
from socrec_online.models.recommender import (
    FusedRecommender,
    RecommenderConfig,
    load_recommender,
    save_recommender,
)
from socrec_online.models.serving import ServingState
from socrec_online.models.train import Fitted, TrainConfig, fit

TAUS, DIMS = (0.05, 0.5), (8, 12)


@pytest.fixture(scope="module")
def composed():  # type: ignore[no-untyped-def]
    """The fused pick and the GNN pick on the same data, from runs at two temperatures and two widths."""
    ds, split, text, _, _ = block_setting()
    runs: dict[tuple[str, float, int], Fitted] = {}

    def fit_at(kind: str):  # type: ignore[no-untyped-def]
        def at(tau: float, dim: int) -> Fitted:
            mcfg = RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind=kind, dim=dim, text_dim=16,  # type: ignore[arg-type]
                                     tau=tau, graph_half=kind == "fused")
            runs[(kind, tau, dim)] = fit(ds, split, mcfg, TrainConfig(epochs=15, batch_users=16, eval_every=5,
                                                                      patience=3, progress=False), text)
            return runs[(kind, tau, dim)]
        return at

    fused = select_width(fit_at("fused"), TAUS, DIMS, split)[0]
    gnn = select_width(fit_at("gnn"), TAUS, DIMS, split)[0]
    return ds, split, fused, gnn, runs


def _scores(f: Fitted) -> torch.Tensor:
    with torch.no_grad():
        return f.model.score_many(*f.model.full_vectors(f.graph, f.item_text, f.interest))


def _valid(f: Fitted, split) -> float:  # type: ignore[no-untyped-def]
    s = _scores(f)
    return evaluate_full_ranking(lambda ub: s[ub], split.n_users, split.n_items, (split.train,), split.valid)["ndcg@10"]


def test_the_graph_part_is_the_gnn_pick_and_the_text_is_added_on_top(composed) -> None:  # type: ignore[no-untyped-def]
    """The composed logit is (1 - alpha) * the GNN pick's logit + alpha * the fused halves' + beta * log(1 + n_i):
    graph part weight for weight the model ``lightgcn`` keeps, so the kept model validates at least as
    well as that GNN with its own popularity term, and scores as its picks say."""
    _, split, fused, gnn, runs = composed
    v = fused.result.best_valid
    alpha, beta = v["text_mix"], v[PRIOR_KEY]
    graph_shares = [v[f"{GRAPH_SHARE_KEY}{d}"] for d in DIMS]
    assert graph_shares == [gnn.result.best_valid.get(f"{SHARE_KEY}{d}", float(d == gnn.model.cfg.dim)) for d in DIMS]
    assert _valid(fused, split) == pytest.approx(v["ndcg@10"])
    assert _valid(fused, split) >= _valid(gnn, split) - 1e-9

    # the logit, rebuilt from the runs' halves: the graph half of each width's best graph run at the
    # GNN pick's shares equals the GNN pick's logit (its popularity term aside)
    def best(part: int, dim: int) -> torch.Tensor:
        def half_logit(tau: float) -> torch.Tensor:
            u, i, scale = halves_of(runs[("fused", tau, dim)])[part]
            return u @ i.T * scale

        def valid(tau: float) -> float:
            s = half_logit(tau)
            return evaluate_full_ranking(lambda ub: s[ub], split.n_users, split.n_items, (split.train,),
                                         split.valid)["ndcg@10"]
        return half_logit(max(TAUS, key=valid))  # ties: the first, as the pick

    with torch.no_grad():
        graph = sum(b * best(0, d) for b, d in zip(graph_shares, DIMS))
        text = sum(v[f"{SHARE_KEY}{d}"] * best(1, d) for d in DIMS)
        log_users = torch.log1p(fused.graph.item_degree())
        gnn_logit = _scores(gnn) - gnn.model.cfg.pop_prior * log_users
    assert torch.allclose(graph, gnn_logit, atol=1e-3)
    assert torch.allclose(_scores(fused), (1 - alpha) * graph + alpha * text + beta * log_users, atol=1e-3)


def test_the_composed_model_saves_and_serves_as_it_validated(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds, split, fused, _, _ = composed
    info = save_recommender(tmp_path, fused.model, ds.users.all_ids, ds.items.all_ids, {})
    back, *_ = load_recommender(info.path)
    assert isinstance(back, FusedRecommender) and back.cfg.members == fused.model.cfg.members
    assert back.cfg.text_mix == fused.model.cfg.text_mix and back.cfg.pop_prior == fused.model.cfg.pop_prior
    st = ServingState(back, ds.users.all_ids, ds.items.all_ids, item_text=fused.item_text)
    st.learn_interactions(ds.users.ids(split.train.user.tolist()), ds.items.ids(split.train.item.tolist()))
    st.learn_follows(ds.users.ids(ds.social_src.tolist()), ds.users.ids(ds.social_dst.tolist()))
    st.flush()
    users = torch.arange(10)
    with torch.no_grad():
        got = back.score_many(st.user_vectors(users, fused.interest[:10]), st.item_vectors())
    assert torch.allclose(got, _scores(fused)[:10], atol=1e-3)


def test_the_text_is_kept_only_with_a_valid_gain_of_one_standard_error(composed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Where the text's valid gain over the GNN pick is within what another draw of valid users could
    reverse, the kept model is that GNN, popularity term included, score for score."""
    _, split, fused, gnn, runs = composed
    v = fused.result.best_valid
    assert v["text_mix"] == 0.0 or v["text_gain"] >= TEXT_EVIDENCE * v["text_gain_se"]
    by_width = [[runs[("fused", tau, dim)] for tau in TAUS] for dim in DIMS]
    monkeypatch.setattr(compose, "TEXT_SHARES", (0.5,))  # the text at half the score, or the GNN
    half = compose_on_valid(by_width, split).result.best_valid
    assert (half["text_mix"] == 0.5) == (half["text_gain"] >= TEXT_EVIDENCE * half["text_gain_se"])
    monkeypatch.setattr(compose, "TEXT_EVIDENCE", -math.inf)  # any gain is enough
    kept = compose_on_valid(by_width, split)
    assert kept.result.best_valid["text_mix"] == 0.5 and kept.result.best_valid["text_gain"] == half["text_gain"]
    assert not torch.allclose(_scores(kept), _scores(gnn), atol=1e-3)
    monkeypatch.setattr(compose, "TEXT_EVIDENCE", math.inf)  # no gain is enough: the GNN
    dropped = compose_on_valid(by_width, split)
    assert dropped.result.best_valid["text_mix"] == 0.0 and dropped.model.cfg.pop_prior == gnn.model.cfg.pop_prior
    assert torch.allclose(_scores(dropped), _scores(gnn), atol=1e-3)

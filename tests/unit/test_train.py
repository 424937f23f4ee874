"""Training, snapshots and the inductive serving path on a tiny synthetic network."""

from __future__ import annotations

import pytest
import torch
from _blocks import block_dataset

from socrec_online.eval.baselines import Popularity
from socrec_online.eval.harness import test_metrics as harness_test_metrics
from socrec_online.eval.splits import recbole_split
from socrec_online.models.gnn import build_graph
from socrec_online.models.recommender import (
    FusedRecommender,
    RecommenderConfig,
    load_recommender,
    save_recommender,
)
from socrec_online.models.serving import ServingState
from socrec_online.models.train import TrainConfig, fit


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    ds = block_dataset()
    split = recbole_split(ds.interactions, ds.n_users, ds.n_items, seed=1)
    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(ds.n_items, 16, generator=g), dim=1)  # stand-in text tower
    return ds, split, text


def test_fused_training_beats_popularity(tiny) -> None:  # type: ignore[no-untyped-def]
    ds, split, text = tiny
    mcfg = RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind="fused", dim=16, text_dim=16)
    fitted = fit(ds, split, mcfg, TrainConfig(epochs=30, batch_users=16, eval_every=5, patience=3, progress=False, seed=0), text)
    with torch.no_grad():
        uv, iv = fitted.model.full_vectors(fitted.graph, fitted.item_text, fitted.interest)
    fused = harness_test_metrics(lambda ub: fitted.model.score_many(uv[ub], iv), split)
    pop = harness_test_metrics(Popularity(ds.n_items).learn_many(split.train).score_many, split)
    assert fitted.result.best_epoch > 0
    assert fused["ndcg@10"] > 2 * pop["ndcg@10"], (fused, pop)


def test_halved_fused_picks_text_mix_on_validation_and_serves_it(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The graph-only half and the fused half train side by side; the mix validation picks is never
    worse on validation than the graph half alone, and a snapshot serves exactly that mix."""
    from socrec_online.eval.metrics import evaluate_full_ranking
    from socrec_online.models.train import TEXT_MIX_GRID

    ds, split, text = tiny
    mcfg = RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind="fused", dim=8, text_dim=16, graph_half=True)
    fitted = fit(ds, split, mcfg, TrainConfig(epochs=20, batch_users=16, eval_every=5, patience=3, progress=False), text)
    model = fitted.model
    assert model.cfg.text_mix in TEXT_MIX_GRID and fitted.result.best_valid["text_mix"] == model.cfg.text_mix

    def valid_ndcg(m: FusedRecommender) -> float:
        with torch.no_grad():
            uv, iv = m.full_vectors(fitted.graph, fitted.item_text, fitted.interest)
        return evaluate_full_ranking(lambda ub: m.score_many(uv[ub], iv), split.n_users, split.n_items,
                                     (split.train,), split.valid)["ndcg@10"]

    chosen = valid_ndcg(model)
    assert chosen == pytest.approx(fitted.result.best_valid["ndcg@10"])
    info = save_recommender(tmp_path, model, ds.users.all_ids, ds.items.all_ids, {})
    back, *_ = load_recommender(info.path)
    assert back.cfg.text_mix == model.cfg.text_mix and back.user_emb.shape[1] == 16
    assert valid_ndcg(back) == pytest.approx(chosen)
    back.set_text_mix(0.0)  # the graph half alone
    assert chosen >= valid_ndcg(back) - 1e-9
    # each half came back with the weights of its own best validation, wherever the other peaked
    hist = fitted.result.history
    assert valid_ndcg(back) == pytest.approx(max(h["graph_ndcg@10"] for h in hist))
    back.set_text_mix(1.0)
    assert valid_ndcg(back) == pytest.approx(max(h["ndcg@10"] for h in hist))
    # the serving path scores the halved model as training does, on the graph it grew event by event
    back.set_text_mix(model.cfg.text_mix)
    st = ServingState(back.eval(), ds.users.all_ids, ds.items.all_ids, item_text=text)
    st.learn_interactions(ds.users.ids(split.train.user.tolist()), ds.items.ids(split.train.item.tolist()))
    st.learn_follows(ds.users.ids(ds.social_src.tolist()), ds.users.ids(ds.social_dst.tolist()))
    st.flush()
    with torch.no_grad():
        uv, iv = back.full_vectors(fitted.graph, fitted.item_text, fitted.interest)
    assert torch.allclose(st.item_vectors(), iv, atol=1e-5)
    users = torch.arange(10)
    assert torch.allclose(st.user_vectors(users, fitted.interest[:10]), uv[:10], atol=1e-5)


def test_graph_half_trains_as_the_gnn_alone(tiny) -> None:  # type: ignore[no-untyped-def]
    """At the same seed the halved model's graph half starts and trains as ``kind="gnn"`` (its loss is
    its own), so text share 0 is that GNN and the share validation picks cannot validate below it."""
    ds, split, text = tiny
    tcfg = TrainConfig(epochs=15, batch_users=16, eval_every=5, patience=100, progress=False, seed=3)

    def fit_kind(kind: str):  # type: ignore[no-untyped-def]
        mcfg = RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind=kind, dim=8, text_dim=16,  # type: ignore[arg-type]
                                 graph_half=kind == "fused")
        return fit(ds, split, mcfg, tcfg, text if kind == "fused" else None)

    gnn, fused = fit_kind("gnn"), fit_kind("fused")
    assert torch.allclose(fused.model.user_emb[:, :8], gnn.model.user_emb, atol=1e-6)
    assert torch.allclose(fused.model.item_emb[:, :8], gnn.model.item_emb, atol=1e-6)
    assert fused.result.best_valid["graph_ndcg@10"] == pytest.approx(gnn.result.best_valid["ndcg@10"])
    assert fused.result.best_valid["ndcg@10"] >= gnn.result.best_valid["ndcg@10"] - 1e-9
    fused.model.set_text_mix(0.0)
    with torch.no_grad():
        uv, iv = fused.model.full_vectors(fused.graph, fused.item_text, fused.interest)
        gu, gi = gnn.model.full_vectors(gnn.graph, gnn.item_text, gnn.interest)
    alone = harness_test_metrics(lambda ub: gnn.model.score_many(gu[ub], gi), split)
    assert harness_test_metrics(lambda ub: fused.model.score_many(uv[ub], iv), split) == pytest.approx(alone)


@pytest.mark.parametrize("loss", ["bpr", "bce", "infonce"])
def test_pair_losses_decrease_and_learn(tiny, loss) -> None:  # type: ignore[no-untyped-def]
    """A falling loss is not enough: the trained model must rank the held-out items of each user's
    community well above where the same model untrained, and the popularity fallback, put them."""
    ds, split, text = tiny
    mcfg = RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind="gnn", dim=16, text_dim=16)
    fitted = fit(ds, split, mcfg, TrainConfig(epochs=6, eval_every=3, patience=5, progress=False, loss=loss), text)
    h = fitted.result.history
    assert len(h) == 2 and h[-1]["loss"] < h[0]["loss"]

    def held_out(model: FusedRecommender) -> dict[str, float]:
        with torch.no_grad():
            uv, iv = model.eval().full_vectors(fitted.graph, fitted.item_text, fitted.interest)
        return harness_test_metrics(lambda ub: model.score_many(uv[ub], iv), split)

    torch.manual_seed(0)
    trained, untrained = held_out(fitted.model), held_out(FusedRecommender(mcfg))
    pop = harness_test_metrics(Popularity(ds.n_items).learn_many(split.train).score_many, split)
    assert trained["ndcg@10"] > 2 * max(untrained["ndcg@10"], pop["ndcg@10"]), (trained, untrained, pop)


def test_snapshot_roundtrip_scores_identically(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds, split, text = tiny
    torch.manual_seed(0)
    model = FusedRecommender(RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, dim=8, text_dim=16))
    info = save_recommender(tmp_path, model, ds.users.all_ids, ds.items.all_ids, {"ndcg@10": 0.1})
    back, uids, iids, manifest = load_recommender(info.path)
    assert uids == ds.users.all_ids and iids == ds.items.all_ids
    assert manifest["config"]["recommender"]["dim"] == 8
    interest = torch.randn(ds.n_users, 16)
    g = build_graph(ds.n_users, ds.n_items, split.train.user, split.train.item, None, ds.social_src, ds.social_dst,
                    model.cfg.gnn())
    with torch.no_grad():
        a = model.full_vectors(g, text, interest)
        b = back.full_vectors(g, text, interest)
    assert torch.equal(model.score_many(*a), back.score_many(*b))


def test_serving_state_is_inductive_and_matches_full_recompute(tiny) -> None:  # type: ignore[no-untyped-def]
    ds, split, text = tiny
    torch.manual_seed(0)
    model = FusedRecommender(RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, dim=8, text_dim=16)).eval()
    st = ServingState(model, ds.users.all_ids, ds.items.all_ids, item_text=text)
    st.learn_interactions(ds.users.ids(split.train.user.tolist()), ds.items.ids(split.train.item.tolist()))
    st.learn_follows(ds.users.ids(ds.social_src.tolist()), ds.users.ids(ds.social_dst.tolist()))
    st.flush()
    # a new item, a new user who follows someone and clicks the new item and an old one
    new_text = torch.nn.functional.normalize(torch.randn(1, 16), dim=1)
    st.add_items(["brand-new-item"], new_text)
    st.learn_follows(["brand-new-user"], [ds.users.id(0)])
    st.learn_interactions(["brand-new-user", "brand-new-user"], ["brand-new-item", ds.items.id(5)])
    changed_users, _ = st.flush()
    new_u = st.users.row("brand-new-user")
    assert new_u in changed_users.tolist()
    # equals a full recompute on the grown graph
    with torch.no_grad():
        x0 = model.layer0(st.graph.n_users, st.graph.n_items, st.item_text)
        full = model.gnn(x0, st.graph.normalized_csr())
    h_users = full[: st.graph.n_users]
    iv_full = model.item_vectors(st.item_text, full[st.graph.n_users :])
    assert torch.allclose(st.item_vectors(), iv_full, atol=1e-5)
    interest = torch.zeros(1, 16)
    uv = st.user_vectors(torch.tensor([new_u]), interest)
    assert torch.allclose(uv, model.user_vectors(h_users[new_u : new_u + 1], interest), atol=1e-5)
    assert uv.norm() > 0  # the new user got a vector from its neighbourhood alone
    scores, rows = st.rank(torch.tensor([new_u]), interest, k=5)
    assert rows.shape == (1, 5) and torch.isfinite(scores).all()
    assert set(rows[0].tolist()) <= set(range(len(st.items)))

"""An ensemble of widths is one model: it scores as its members' weighted logits, saves, serves."""

from __future__ import annotations

import pytest
import torch
from _blocks import block_setting

from socrec_online.models.ensemble import assemble, ensemble_on_valid, share_grid, width_shares
from socrec_online.models.recommender import (
    FusedRecommender,
    RecommenderConfig,
    load_recommender,
    save_recommender,
)
from socrec_online.models.serving import ServingState
from socrec_online.models.train import TrainConfig, fit


def _member(ds, dim: int, tau: float, mix: float, seed: int, kind: str = "fused") -> FusedRecommender:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    m = FusedRecommender(RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind=kind, dim=dim,  # type: ignore[arg-type]
                                           text_dim=16, tau=tau, graph_half=kind == "fused"))
    if kind == "fused":
        m.set_text_mix(mix)
    return m.eval()


@pytest.fixture(scope="module")
def setting():  # type: ignore[no-untyped-def]
    return block_setting()


@pytest.mark.parametrize("kind", ["fused", "gnn"])
def test_ensemble_logit_is_the_members_weighted_logits(setting, kind: str) -> None:  # type: ignore[no-untyped-def]
    ds, _, text, interest, graph = setting
    a, b = _member(ds, 8, 0.1, 0.3, 0, kind), _member(ds, 12, 0.3, 0.7, 1, kind)
    ens = assemble([a, b], [0.4, 0.6])
    assert ens.cfg.widths == (8, 12) and ens.cfg.emb_dim == (40 if kind == "fused" else 20)
    with torch.no_grad():
        want = 0.4 * a.score_many(*a.full_vectors(graph, text, interest)) + 0.6 * b.score_many(
            *b.full_vectors(graph, text, interest))
        got = ens.score_many(*ens.full_vectors(graph, text, interest))
    assert torch.allclose(got, want, atol=1e-4)
    with pytest.raises(ValueError, match="sum to 1"):
        assemble([a, b], [0.5, 0.6])
    with pytest.raises(ValueError, match="ensemble"):
        ens.set_text_mix(0.5)


def test_ensemble_saves_and_serves_as_one_model(setting, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds, split, text, interest, graph = setting
    ens = assemble([_member(ds, 8, 0.1, 0.4, 0), _member(ds, 16, 0.1, 0.6, 1)], [0.3, 0.7])
    info = save_recommender(tmp_path, ens, ds.users.all_ids, ds.items.all_ids, {})
    back, *_ = load_recommender(info.path)
    assert back.cfg.members == ens.cfg.members
    with torch.no_grad():
        assert torch.equal(ens.score_many(*ens.full_vectors(graph, text, interest)),
                           back.score_many(*back.full_vectors(graph, text, interest)))
    # the streaming state serves it, a brand-new item by its text right away
    st = ServingState(back, ds.users.all_ids, ds.items.all_ids, item_text=text)
    st.learn_interactions(ds.users.ids(split.train.user.tolist()), ds.items.ids(split.train.item.tolist()))
    st.flush()
    new = torch.nn.functional.normalize(text[:1] + 0.01, dim=1)
    rows = st.add_items(["new-item"], new)
    assert st.item_vectors(rows).norm() > 0
    scores, top = st.rank(torch.tensor([0, 1]), interest[:2], k=5)
    assert top.shape == (2, 5) and torch.isfinite(scores).all()


def test_share_grid_covers_each_member_alone() -> None:
    two, three = share_grid(2), share_grid(3)
    assert len(two) == 11 and len(three) == 66
    assert all(abs(sum(s) - 1.0) < 1e-9 and min(s) >= 0 for s in two + three)
    assert (1.0, 0.0) in two and (0.0, 1.0) in two and (0.0, 0.0, 1.0) in three


def test_shares_picked_on_validation_never_validate_below_the_best_width(setting) -> None:  # type: ignore[no-untyped-def]
    ds, split, text, _, _ = setting
    tcfg = TrainConfig(epochs=20, batch_users=16, eval_every=5, patience=2, progress=False, seed=0)
    fits = [fit(ds, split, RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind="fused", dim=d,
                                             text_dim=16, graph_half=True), tcfg, text) for d in (8, 16)]
    alone = max(f.result.best_valid["ndcg@10"] for f in fits)
    kept = ensemble_on_valid(fits, split)
    assert kept.result.best_valid["ndcg@10"] >= alone - 1e-9
    shares = width_shares(kept.result.best_valid)
    assert set(shares) == {"8", "16"} and abs(sum(shares.values()) - 1.0) < 1e-9
    # what is kept scores on valid as the pick said
    from socrec_online.models.train import valid_at_mixes

    (m,) = valid_at_mixes(kept.model, kept.graph, split, kept.item_text, kept.interest, [None])
    assert m["ndcg@10"] == pytest.approx(kept.result.best_valid["ndcg@10"], abs=1e-6)

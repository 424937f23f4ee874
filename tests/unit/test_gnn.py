"""Social tower: normalisation, and the k-hop incremental update equals a full recompute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socrec_online.models.gnn import (
    IncrementalPropagator,
    InteractionGraph,
    LightGCN,
    SocialGNNConfig,
    build_graph,
)


def _random_graph(seed: int, n_users: int = 30, n_items: int = 40, n_ui: int = 120, n_uu: int = 40) -> InteractionGraph:
    rng = np.random.default_rng(seed)
    return build_graph(
        n_users, n_items,
        rng.integers(0, n_users, n_ui), rng.integers(0, n_items, n_ui), rng.integers(1, 50, n_ui).astype(float),
        rng.integers(0, n_users, n_uu), rng.integers(0, n_users, n_uu),
        SocialGNNConfig(n_layers=2, social_weight=0.5, weighting="log"),
    )


def test_symmetric_normalisation_of_the_joint_graph() -> None:
    g = InteractionGraph(2, 1, SocialGNNConfig())
    g.add_interactions(np.array([0, 1]), np.array([0, 0]))
    g.add_social(np.array([0]), np.array([1]))
    a = g.normalized_csr().to_dense()  # nodes: u0, u1, i0; every degree is 2
    expected = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    assert torch.allclose(a, expected)
    # re-adding an interaction does not duplicate the edge
    g.add_interactions(np.array([0]), np.array([0]))
    assert g.n_edges == 3


@pytest.mark.parametrize("full_fraction", [1.1, 0.0])  # always row-local / always one spmm per layer
def test_incremental_update_equals_full_recompute(full_fraction: float) -> None:
    torch.manual_seed(0)
    g = _random_graph(0)
    cfg = g.cfg
    x0 = torch.randn(g.n_nodes, 8)
    prop = IncrementalPropagator(g, x0.clone())
    prop.full_fraction = full_fraction
    # a batch of new edges, including a brand-new user and a brand-new item
    g.add_interactions(np.array([3, 30, 7]), np.array([5, 40, 40]), np.array([2.0, 1.0, 3.0]))
    g.add_social(np.array([30, 12]), np.array([4, 13]))
    cu, ci = prop.update(torch.tensor([3, 30, 7, 4, 12, 13]), torch.tensor([5, 40]))
    full_x0 = torch.cat([x0[:30], torch.zeros(1, 8), x0[30:], torch.zeros(1, 8)])
    full = LightGCN(cfg)(full_x0, g.normalized_csr())
    assert torch.allclose(prop.out, full, atol=1e-5)
    if full_fraction > 1:  # it really was local: some rows were not recomputed
        assert cu.numel() < g.n_users or ci.numel() < g.n_items
    # removing edges is incremental too
    g.remove_social(np.array([30]), np.array([4]))
    prop.update(torch.tensor([30, 4]), torch.tensor([], dtype=torch.long))
    assert torch.allclose(prop.out, LightGCN(cfg)(full_x0, g.normalized_csr()), atol=1e-5)


def test_untouched_far_nodes_keep_their_embedding() -> None:
    # two disconnected components: an edge in one never changes the other
    g = InteractionGraph(4, 4, SocialGNNConfig(n_layers=2))
    g.add_interactions(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]))
    x0 = torch.randn(g.n_nodes, 4)
    prop = IncrementalPropagator(g, x0)
    prop.full_fraction = 1.1
    before = prop.out.clone()
    g.add_interactions(np.array([0]), np.array([1]))
    cu, ci = prop.update(torch.tensor([0]), torch.tensor([1]))
    assert set(cu.tolist()) == {0, 1} and set(ci.tolist()) == {0, 1}
    assert torch.equal(prop.out[[2, 3, 6, 7]], before[[2, 3, 6, 7]])

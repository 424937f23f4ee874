"""The patched normalised adjacency equals one rebuilt from the edge list, whatever the batches did."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socrec_online.models.gnn import InteractionGraph, SocialGNNConfig


def _rebuilt(g: InteractionGraph) -> torch.Tensor:
    """Â of the same edges, built from scratch (a fresh graph sharing the edge stores)."""
    h = InteractionGraph(g.n_users, g.n_items, g.cfg)
    h._ui, h._uu = g._ui, g._uu
    return h.normalized_csr().to_dense()


@pytest.mark.parametrize("weighting", ["binary", "log"])
def test_patched_adjacency_equals_a_rebuild(weighting: str) -> None:
    rng = np.random.default_rng(1)
    g = InteractionGraph(5, 5, SocialGNNConfig(weighting=weighting, social_weight=0.5))  # type: ignore[arg-type]
    g.add_interactions(rng.integers(0, 5, 30), rng.integers(0, 5, 30))
    g.normalized_csr()
    for _ in range(150):  # small batches: adds (growing users and items), repeats, removals, follows
        nu, ni, k = g.n_users, g.n_items, int(rng.integers(1, 6))
        op = int(rng.integers(0, 4))
        if op == 0:
            g.add_interactions(rng.integers(0, nu + 2, k), rng.integers(0, ni + 2, k), rng.integers(1, 5, k).astype(float))
        elif op == 1:
            g.remove_interactions(rng.integers(0, nu, k), rng.integers(0, ni, k))
        elif op == 2:
            g.add_social(rng.integers(0, nu + 1, k), rng.integers(0, nu + 1, k))
        else:
            g.remove_social(rng.integers(0, nu, k), rng.integers(0, nu, k))
        assert torch.allclose(g.normalized_csr().to_dense(), _rebuilt(g), atol=1e-6)
    assert g.n_users > 5 and g.n_items > 5  # the graph grew along the way


def test_a_removed_then_readded_edge_keeps_one_entry() -> None:
    g = InteractionGraph(2, 2, SocialGNNConfig())
    g.add_interactions(np.array([0, 1]), np.array([0, 1]))
    g.normalized_csr()
    g.remove_interactions(np.array([0]), np.array([0]))
    g.add_interactions(np.array([0]), np.array([0]))
    a = g.normalized_csr()
    assert int(a.crow_indices()[-1]) == 4  # two undirected edges, both directions, no duplicate
    assert torch.allclose(a.to_dense(), _rebuilt(g))

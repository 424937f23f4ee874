"""A tiny synthetic social network with community structure, for training tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from socrec_online.data.base import Dataset, Interactions
from socrec_online.idmap import IdMap


def block_dataset(seed: int = 0) -> Dataset:
    """4 communities x 30 users; each user engages 12 of its community's 25 items; friends within."""
    rng = np.random.default_rng(seed)
    users, items = IdMap(f"u{i}" for i in range(120)), IdMap(f"i{j}" for j in range(100))
    us, its, src, dst = [], [], [], []
    for u in range(120):
        c = u // 30
        for j in rng.choice(25, size=12, replace=False):
            us.append(u)
            its.append(c * 25 + int(j))
        for f in rng.choice(30, size=3, replace=False):
            if c * 30 + int(f) != u:
                src.append(u)
                dst.append(c * 30 + int(f))
    n = len(us)
    inter = Interactions(np.asarray(us), np.asarray(its), np.zeros(n), np.ones(n, np.float32), np.zeros(n, np.int8))
    text = [f"item {j} of community {j // 25}" for j in range(100)]
    return Dataset("blocks", users, items, text, inter, np.asarray(src), np.asarray(dst))


def block_setting() -> tuple[Dataset, Any, Any, Any, Any]:
    """The block dataset, its seeded 8:1:1 split, stand-in item texts (16-d), interests and the train graph."""
    import torch

    from socrec_online.eval.splits import recbole_split
    from socrec_online.models.gnn import build_graph
    from socrec_online.models.recommender import RecommenderConfig

    ds = block_dataset()
    split = recbole_split(ds.interactions, ds.n_users, ds.n_items, seed=1)
    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(ds.n_items, 16, generator=g), dim=1)
    interest = torch.randn(ds.n_users, 16, generator=g)
    graph = build_graph(ds.n_users, ds.n_items, split.train.user, split.train.item, None, ds.social_src,
                        ds.social_dst, RecommenderConfig(1, 1).gnn())
    return ds, split, text, interest, graph

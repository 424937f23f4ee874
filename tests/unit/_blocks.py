"""A tiny synthetic social network with community structure, for training tests."""

from __future__ import annotations

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

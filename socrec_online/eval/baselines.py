"""Non-neural baselines in the same harness: most-popular and river's online biased MF."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor

from socrec_online.data.base import Interactions


class Popularity:
    """Scores every item by its training interaction count: the same list for every user."""

    def __init__(self, n_items: int) -> None:
        self.counts = torch.zeros(n_items)

    def learn_many(self, inter: Interactions) -> Popularity:
        self.counts.index_add_(0, torch.as_tensor(inter.item), torch.ones(len(inter)))
        return self

    def score_many(self, users: Tensor) -> Tensor:
        return self.counts.unsqueeze(0).expand(users.shape[0], -1)  # (B, I)


@dataclass
class RiverMFConfig:
    n_factors: int = 32
    epochs: int = 3  # passes over the training stream (online learner, replayed)
    n_neg: int = 2  # sampled unobserved items per positive, labelled 0
    lr: float = 0.05
    l2: float = 1e-4
    seed: int = 0


class RiverMF:
    """``river.reco.BiasedMF`` learnt online (learn_one per event) on implicit feedback.

    Positives get y = 1, sampled unobserved items y = 0 (implicit-feedback MF). After learning,
    its latent dicts are read into matrices so full ranking is one matrix product.
    """

    def __init__(self, n_users: int, n_items: int, cfg: RiverMFConfig | None = None) -> None:
        from river import optim, reco

        self.cfg = cfg or RiverMFConfig()
        self.n_users, self.n_items = n_users, n_items
        c = self.cfg
        self.model = reco.BiasedMF(
            n_factors=c.n_factors,
            bias_optimizer=optim.SGD(c.lr),
            latent_optimizer=optim.SGD(c.lr),
            l2_bias=c.l2,
            l2_latent=c.l2,
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=c.seed),
            seed=c.seed,
        )

    def learn_many(self, inter: Interactions, progress: bool = False) -> RiverMF:
        c = self.cfg
        rng = np.random.default_rng(c.seed)
        seen = set(zip(inter.user.tolist(), inter.item.tolist(), strict=True))
        it = range(c.epochs)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="river_mf", unit="ep")  # type: ignore[assignment]
        for _ in it:
            for idx in rng.permutation(len(inter)).tolist():
                u, i = int(inter.user[idx]), int(inter.item[idx])
                self.model.learn_one(user=u, item=i, y=1.0)
                for j in rng.integers(0, self.n_items, c.n_neg).tolist():
                    if (u, j) not in seen:
                        self.model.learn_one(user=u, item=int(j), y=0.0)
        self._freeze()
        return self

    def _freeze(self) -> None:
        m = self.model
        k = self.cfg.n_factors
        self.U = torch.zeros(self.n_users, k)
        self.V = torch.zeros(self.n_items, k)
        self.bu = torch.zeros(self.n_users)
        self.bi = torch.zeros(self.n_items)
        for u, v in m.u_latents.items():
            self.U[cast(int, u)] = torch.as_tensor(np.asarray(v, np.float32))
        for i, v in m.i_latents.items():
            self.V[cast(int, i)] = torch.as_tensor(np.asarray(v, np.float32))
        for u, b in m.u_biases.items():
            self.bu[cast(int, u)] = float(b)
        for i, b in m.i_biases.items():
            self.bi[cast(int, i)] = float(b)

    def score_many(self, users: Tensor) -> Tensor:
        u = users.cpu()
        return self.bu[u].unsqueeze(1) + self.bi.unsqueeze(0) + self.U[u] @ self.V.T  # (B, I)

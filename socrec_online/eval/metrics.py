"""Full-ranking top-k metrics (RecBole definitions), mean over users with held-out items.

Recall@k = hits / |held-out|; NDCG@k = DCG / IDCG with IDCG over min(|held-out|, k) ideal hits;
HR@k = 1 if any hit. Items the user already has in the history are masked before ranking
(for test: train and valid, as RecBole's cumulative ``used_ids`` do; for valid: train).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from socrec_online.data.base import Interactions


@dataclass(frozen=True)
class PerUser:
    """Metrics per ranked user: ``users`` (n,) rows with held-out items, ``metrics[name]`` (n,)."""

    users: np.ndarray
    metrics: dict[str, np.ndarray]

    def means(self) -> dict[str, float]:
        """Each metric's mean over the users, and ``n_users``."""
        n = max(int(self.users.size), 1)
        return {k: float(v.sum()) / n for k, v in self.metrics.items()} | {"n_users": float(self.users.size)}


ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (B,) user rows -> (B, n_items) scores


def csr_of(n_users: int, *parts: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, items) of the union of interaction sets, per user."""
    if parts:
        u = np.concatenate([p.user for p in parts])
        i = np.concatenate([p.item for p in parts])
    else:
        u = i = np.zeros(0, np.int64)
    order = np.argsort(u, kind="stable")
    indptr = np.zeros(n_users + 1, np.int64)
    np.add.at(indptr, u + 1, 1)
    return np.cumsum(indptr), i[order]


def topk_metrics_from_hits(hits: torch.Tensor, n_pos: torch.Tensor, ks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Per-user metrics from a (B, K) 0/1 hit matrix of the top-K ranking and (B,) held-out counts."""
    out: dict[str, torch.Tensor] = {}
    kmax = hits.shape[1]
    disc = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float64, device=hits.device))  # (K,)
    h = hits.to(torch.float64)
    for k in ks:
        hk = h[:, :k]
        n_hit = hk.sum(1)
        out[f"recall@{k}"] = n_hit / n_pos.clamp(min=1)
        out[f"hr@{k}"] = (n_hit > 0).to(torch.float64)
        out[f"precision@{k}"] = n_hit / k
        dcg = (hk * disc[:k]).sum(1)
        ideal_n = n_pos.clamp(max=k).to(torch.long)
        cum = torch.cat([torch.zeros(1, dtype=torch.float64, device=hits.device), disc[:k].cumsum(0)])
        out[f"ndcg@{k}"] = dcg / cum[ideal_n].clamp(min=1e-12)
    return out


@torch.no_grad()
def per_user_full_ranking(
    score_fn: ScoreFn,
    n_users: int,
    n_items: int,
    history: tuple[Interactions, ...],
    heldout: Interactions,
    ks: tuple[int, ...] = (10, 20),
    batch_users: int = 512,
    device: torch.device | str = "cpu",
) -> PerUser:
    """Rank all items for every user with held-out items, history masked: each metric per user, for
    means (``evaluate_full_ranking``) and paired comparisons (``eval/paired.py``)."""
    h_ptr, h_items = csr_of(n_users, *history)
    t_ptr, t_items = csr_of(n_users, heldout)
    users = np.flatnonzero(np.diff(t_ptr) > 0)
    kmax = max(ks)
    parts: dict[str, list[np.ndarray]] = {}
    for s in range(0, users.size, batch_users):
        ub = users[s : s + batch_users]
        scores = score_fn(torch.as_tensor(ub, device=device)).to(torch.float32).clone()  # (B, n_items)
        rows_h = np.repeat(np.arange(ub.size), np.diff(h_ptr)[ub])
        cols_h = np.concatenate([h_items[h_ptr[u] : h_ptr[u + 1]] for u in ub]) if rows_h.size else rows_h
        scores[torch.as_tensor(rows_h, device=scores.device), torch.as_tensor(cols_h, device=scores.device)] = -torch.inf
        top = scores.topk(kmax, dim=1).indices  # (B, K)
        target = torch.zeros(ub.size, n_items, dtype=torch.bool, device=scores.device)
        rows_t = np.repeat(np.arange(ub.size), np.diff(t_ptr)[ub])
        cols_t = np.concatenate([t_items[t_ptr[u] : t_ptr[u + 1]] for u in ub])
        target[torch.as_tensor(rows_t, device=scores.device), torch.as_tensor(cols_t, device=scores.device)] = True
        hits = target.gather(1, top)
        n_pos = target.sum(1)
        for name, v in topk_metrics_from_hits(hits, n_pos, ks).items():
            parts.setdefault(name, []).append(v.cpu().numpy())
    return PerUser(users, {k: np.concatenate(v) for k, v in parts.items()})


@torch.no_grad()
def evaluate_full_ranking(
    score_fn: ScoreFn,
    n_users: int,
    n_items: int,
    history: tuple[Interactions, ...],
    heldout: Interactions,
    ks: tuple[int, ...] = (10, 20),
    batch_users: int = 512,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Rank all items for every user with held-out items, history masked; mean of each metric."""
    return per_user_full_ranking(score_fn, n_users, n_items, history, heldout, ks, batch_users, device).means()

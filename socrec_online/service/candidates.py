"""Which items are scored for whom, what is filtered, and the per-item evidence shared by all scorers.

Candidates: every live item (published within ``item_ttl_s``) while the catalogue is at most
``ann_threshold`` items (evicted ones not counted); above it, items fresh within ``fresh_window_s`` plus the
``ann_candidates`` nearest items of q(u) plus the items followed users engaged with.
Filters: items the user engaged with (``seen``), the user's own items.
Evidence::

    proof(u, i) = 1 - exp( - sum_{f followed by u, w_fi > 0} w_fi * 2^(-(now - ts_fi) / interest_half_life) )
    pop(i)      = log1p(P_i) / log1p(max_j P_j),  P_i = sum over users' recent engagements with i of
                  max(w, 0) * 2^(-(now - ts) / popularity_half_life)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from socrec_online.engagement import Kind
from socrec_online.service.ann import AnnIndex
from socrec_online.service.arrays import gather
from socrec_online.service.store import Store


def candidates(
    store: Store, ann: AnnIndex, now: float, q: Tensor, rows: np.ndarray, allowed: np.ndarray | None = None
) -> np.ndarray:
    """Live candidate item rows for the users ``rows`` with query vectors ``q`` (B, D), sorted.

    ``allowed`` (item rows) replaces the pool, every one of them whether or not the ANN index
    would find it (evaluation: rank e.g. only cold items with the very scorer users get).
    """
    s = store.settings
    n = len(store.items)
    ts = store.item_ts[:n]
    if allowed is not None:
        return allowed[store.item_ts[allowed] >= now - s.item_ttl_s]
    live = ts >= now - s.item_ttl_s
    if store.n_live_items <= s.ann_threshold or not ann.built:
        return np.nonzero(live)[0]
    pool = [np.nonzero(live & (ts >= now - s.fresh_window_s))[0]]
    qn = q.detach().float().cpu().numpy()
    has = np.abs(qn).sum(1) > 0
    if has.any():
        nn_idx = ann.search(qn[has], s.ann_candidates)
        pool.append(nn_idx[nn_idx >= 0].ravel())
    _, fol = store.pairs(rows[rows >= 0])
    if fol.size:
        it = store.eng_item[fol].ravel()
        pool.append(it[it >= 0])
    cand = np.unique(np.concatenate(pool))
    return cand[live[cand]]


def popularity(store: Store, now: float, cand: np.ndarray) -> np.ndarray:
    """pop(i) of the candidates (C,), in [0, 1]."""
    nu = len(store.users)
    items = store.eng_item[:nu]
    w_all = store.eng_w[:nu]
    ok = (items >= 0) & (w_all > 0)
    age = np.maximum(now - store.eng_ts[:nu][ok], 0.0)
    w = w_all[ok] * np.exp2(-age / store.settings.popularity_half_life_s)
    pop = np.bincount(items[ok], weights=w, minlength=len(store.items))
    top = pop.max() if pop.size else 0.0
    if top <= 0:
        return np.zeros(len(cand), np.float32)
    return (np.log1p(pop[cand]) / math.log1p(top)).astype(np.float32)


def social_keys(store: Store, rows: np.ndarray, cand: np.ndarray, now: float) -> tuple[Tensor, Tensor, Tensor]:
    """Followees' positive engagements with candidates: flat key b*C+pos, decayed weight, 1+4096*liked.

    Work is proportional to the engagements actually reached (a CSR gather), not to users x items.
    """
    c = len(cand)
    known = np.nonzero(rows >= 0)[0]
    owner_k, fol = store.pairs(rows[known])
    dev = store.device
    if not fol.size:
        e = torch.zeros(0, device=dev)
        return e.long(), e, e
    items = store.eng_item[fol]  # (P, R)
    pi, ri = np.nonzero((items >= 0) & (store.eng_w[fol] > 0))
    fr = fol[pi]
    pos_of = np.full(len(store.items), -1, np.int64)
    pos_of[cand] = np.arange(c)
    pos = pos_of[items[pi, ri]]
    keep = pos >= 0
    pi, ri, fr, pos = pi[keep], ri[keep], fr[keep], pos[keep]
    key = known[owner_k][pi] * c + pos
    age = np.maximum(now - store.eng_ts[fr, ri], 0.0)
    dec = store.eng_w[fr, ri] * np.exp2(-age / store.settings.interest_half_life_s)
    tag = 1.0 + 4096.0 * ((store.eng_kind[fr, ri] & Kind.LIKE.value) > 0)  # count and like-count in one sum
    return (
        torch.from_numpy(key).to(dev),
        torch.from_numpy(dec.astype(np.float32)).to(dev),
        torch.from_numpy(tag.astype(np.float32)).to(dev),
    )


def mask_keys(store: Store, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Flat b*C+pos of filtered pairs: items the user engaged with, the user's own items."""
    c = len(cand)
    pos_of = np.full(len(store.items), -1, np.int64)
    pos_of[cand] = np.arange(c)
    known = np.nonzero(rows >= 0)[0]
    parts = []
    seen = [store.seen_rows(int(rows[bi])) for bi in known]
    if seen:
        lens = np.fromiter((a.shape[0] for a in seen), np.int64, len(seen))
        if lens.sum():
            sp = pos_of[np.concatenate(seen)]
            sb = np.repeat(known, lens)
            ok = sp >= 0
            parts.append(sb[ok] * c + sp[ok])
    authors = store.item_author[cand]
    order = np.argsort(authors, kind="stable")
    sorted_a = authors[order]
    lo = np.searchsorted(sorted_a, rows[known], "left")
    hi = np.searchsorted(sorted_a, rows[known], "right")
    indptr = np.concatenate([[0], np.cumsum(hi - lo)])
    if indptr[-1]:
        own_b, own_j = gather(
            indptr,
            np.concatenate([order[x:y] for x, y in zip(lo, hi, strict=True)]),
            np.arange(len(known)),
        )
        parts.append(known[own_b] * c + own_j)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)

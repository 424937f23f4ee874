"""A user's interest vector: THE definition, used by serving (``service/derive.py``) and by the
trainers (``models/train.py``, ``online/finetune.py``), so a model is trained on the vectors it is
served with.

For user ``u`` (text vectors ``e`` L2-normalised, from the text tower)::

    interest(u) = normalise( profile_weight * e(profile_u)
                             + sum_j w_j * 2^(-(t_u - ts_j) / half_life) * e(item_j)
                             + sum_c 0.5 * s_c * 2^(-(t_u - ts_c) / half_life) * e(comment_c) )

over the user's engaged items ``j`` (``w_j``: the pair's net engagement weight,
``socrec_online/engagement.py``, negative for a panned item) and own comments ``c`` (``s_c``: their
sentiment). ``t_u`` is the user's latest event time, so the vector does not depend on the clock
and is the same after a restore; an age below zero counts as zero.

On data without time (every ``ts`` 0) the decay is 1 everywhere; without profiles or comments those
terms are zero; so on a listening log where every pair is a like it is the normalised mean of the
user's items' texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from socrec_online.engagement import COMMENT_TEXT_WEIGHT, MAX_COMMENTS, Engaged
from socrec_online.service.arrays import csr_mm, normalise


@dataclass
class History:
    """What interest is computed from, for ``n`` users (local rows ``0..n-1``), as flat arrays."""

    anchor: np.ndarray  # (n,) float64 t_u, each user's latest event time
    owner: np.ndarray  # (N,) int64 user of each engagement
    item: np.ndarray  # (N,) int64 item row
    weight: np.ndarray  # (N,) float64 net engagement weight
    ts: np.ndarray  # (N,) float64 latest engagement time
    profile: Tensor | None = None  # (n, D) profile vectors, zero rows for users without one
    comment_owner: np.ndarray | None = None  # (C,) int64
    comment_emb: Tensor | None = None  # (C, D)
    comment_sentiment: np.ndarray | None = None  # (C,) signed sentiment the rules used
    comment_ts: np.ndarray | None = None  # (C,)

    @property
    def n(self) -> int:
        return int(self.anchor.shape[0])


def decay(anchor: np.ndarray, ts: np.ndarray, half_life_s: float) -> np.ndarray:
    """2^(-max(anchor - ts, 0) / half_life): a behaviour one half-life older than the anchor counts half."""
    return np.exp2(-np.maximum(anchor - ts, 0.0) / half_life_s)


def interest_vectors(h: History, item_emb: Tensor, half_life_s: float, profile_weight: float) -> Tensor:
    """(n, D) interest vectors (the module docstring's formula); zero rows for users with nothing."""
    if half_life_s <= 0:
        raise ValueError("half_life_s must be > 0")
    coef = h.weight * decay(h.anchor[h.owner], h.ts, half_life_s)
    keep = coef != 0
    owner, item, coef = h.owner[keep], h.item[keep], coef[keep]
    if owner.size and np.any(np.diff(owner) < 0):  # CSR wants rows grouped by user
        order = np.argsort(owner, kind="stable")
        owner, item, coef = owner[order], item[order], coef[order]
    counts = np.bincount(owner, minlength=h.n)
    vec = csr_mm(counts, item, coef, item_emb.shape[0], item_emb)  # (n, D)
    if h.profile is not None and profile_weight:
        vec += profile_weight * h.profile.to(vec.device, vec.dtype)
    if h.comment_emb is not None and h.comment_emb.shape[0]:
        assert h.comment_owner is not None and h.comment_sentiment is not None and h.comment_ts is not None
        cw = COMMENT_TEXT_WEIGHT * h.comment_sentiment * decay(h.anchor[h.comment_owner], h.comment_ts, half_life_s)
        w_t = torch.from_numpy(cw.astype(np.float32)).to(vec.device)
        own = torch.from_numpy(h.comment_owner).to(vec.device)
        vec.index_add_(0, own, h.comment_emb.to(vec.device, vec.dtype) * w_t[:, None])
    return normalise(vec)


def history_of(
    n_users: int,
    pairs: Mapping[tuple[int, int], Engaged],
    recent: int,
    comments: Sequence[tuple[int, float, float]] = (),
    comment_emb: Tensor | None = None,
    profile: Tensor | None = None,
    last_ts: np.ndarray | None = None,
) -> History:
    """The history serving would hold after the same events: per user the ``recent`` newest engaged
    pairs (``pairs``: (user row, item row) -> (net weight, latest time, kinds), in engagement order,
    as the activity table keeps them), the last ``MAX_COMMENTS`` comments (``(user row, ts, signed
    sentiment)`` in time order, ``comment_emb`` aligned), ``t_u`` = the latest of all of these and
    ``last_ts`` (other events, e.g. a profile)."""
    per_user: dict[int, list[tuple[int, Engaged]]] = {}
    for (u, i), e in pairs.items():
        per_user.setdefault(u, []).append((i, e))
    owner, item, weight, ts = [], [], [], []
    for u in sorted(per_user):
        for i, e in per_user[u][-recent:]:
            owner.append(u)
            item.append(i)
            weight.append(e[0])
            ts.append(e[1])
    anchor = np.zeros(n_users, np.float64) if last_ts is None else np.asarray(last_ts, np.float64).copy()
    for u, es in per_user.items():
        anchor[u] = max(anchor[u], max(e[1] for _, e in es))
    kept: dict[int, list[int]] = {}
    for k, (u, t, _s) in enumerate(comments):
        kept.setdefault(u, []).append(k)
        anchor[u] = max(anchor[u], t)
    idx = sorted(k for ks in kept.values() for k in ks[-MAX_COMMENTS:])
    c = [comments[k] for k in idx]
    return History(
        anchor=anchor,
        owner=np.asarray(owner, np.int64),
        item=np.asarray(item, np.int64),
        weight=np.asarray(weight, np.float64),
        ts=np.asarray(ts, np.float64),
        profile=profile,
        comment_owner=np.asarray([x[0] for x in c], np.int64),
        comment_emb=comment_emb[torch.as_tensor(idx, dtype=torch.long)] if comment_emb is not None and idx else None,
        comment_sentiment=np.asarray([x[2] for x in c], np.float64),
        comment_ts=np.asarray([x[1] for x in c], np.float64),
    )


__all__ = ["History", "decay", "history_of", "interest_vectors"]

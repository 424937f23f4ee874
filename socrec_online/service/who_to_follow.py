"""Who to follow: friends of friends and users with similar interests.

    score(u, v) = 0.5 * cos(q(u), interest(v)) + 0.5 * (1 - exp(-mutual(u, v) / 2))

``mutual``: how many of u's followees follow v. Never u, users u follows or unfollowed, users
with neither a mutual nor an interest vector, nor a score at or below 0.05.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from socrec_online.service.reasons import count_reason
from socrec_online.service.scoring import NEG, TIE
from socrec_online.service.store import Store


def users_to_follow(store: Store, rows: np.ndarray, q: Tensor) -> list[list[dict[str, Any]]]:
    """Up to ``who_to_follow_k`` users per user row (-1 = unknown), each {id, score, reason}."""
    b, nu = len(rows), len(store.users)
    k = min(store.settings.who_to_follow_k, nu)
    if nu == 0 or k == 0:
        return [[] for _ in range(b)]
    sim = (q @ store.interest[:nu].T).float().cpu().numpy()  # (B, U)
    mutual = np.zeros((b, nu), np.int32)
    known = np.nonzero(rows >= 0)[0]
    owner_k, fol = store.pairs(rows[known])
    owner = known[owner_k]
    if fol.size:
        o2, fof = store.pairs(fol)
        if fof.size:
            mutual = np.bincount(owner[o2] * nu + fof, minlength=b * nu).reshape(b, nu).astype(np.int32)
    score = 0.5 * sim + 0.5 * (1.0 - np.exp(-mutual / 2.0)) + TIE * store.user_tb[:nu][None, :]
    bad = (mutual == 0) & ~store.has_interest[:nu][None, :]
    bad |= score <= 0.05
    bad[known, rows[known]] = True
    bad[owner, fol] = True
    for bi in known.tolist():
        unf = store.unfollowed_rows(int(rows[bi]))
        if unf.size:
            bad[bi, unf] = True
    score = np.where(bad, NEG, score)
    top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < nu else np.tile(np.arange(nu), (b, 1))
    top_sc = np.take_along_axis(score, top, 1)
    order = np.argsort(-top_sc, axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)
    top_sc = np.round(np.take_along_axis(top_sc, order, 1), 6)
    top_m = np.take_along_axis(mutual, top, 1)
    uids = store.users.id
    out: list[list[dict[str, Any]]] = []
    for bi in range(b):
        res = []
        for j in range(k):
            sc = float(top_sc[bi, j])
            if sc <= NEG / 2:
                break
            m = int(top_m[bi, j])
            reason = count_reason("followed by", m) if m else "shares your interests"
            res.append({"id": uids(int(top[bi, j])), "score": sc, "reason": reason})
        out.append(res)
    return out

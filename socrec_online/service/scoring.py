"""Top-k items per user and the evidence behind each pick.

Zero-shot score (``model_version == "zero-shot"``, served until a trained snapshot exists)::

    q(u)        = normalise( interest(u) + zs_weight_social_tower * social(u) )
    score(u, i) = zs_weight_text * cos(q(u), e(i)) + zs_weight_social * proof(u, i) + zs_weight_popularity * pop(i)

(proof and pop: ``service/candidates.py``.) With a serving model attached the score is its logit;
candidates, filters and evidence stay the same. A query's words decide what matches and the
personal score only reorders within (``service/queries.py``). Equal scores rank by id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from socrec_online.service.ann import AnnIndex
from socrec_online.service.arrays import normalise
from socrec_online.service.candidates import candidates, mask_keys, popularity, social_keys
from socrec_online.service.protocols import ServingModel
from socrec_online.service.queries import QueryRule, query_scores
from socrec_online.service.store import Store

NEG = -1e30
"""The score of a filtered pair."""
TIE = 1e-5
"""Weight of the id-derived tie-break added to every score."""


@dataclass
class Top:
    """Top-k picks per user and the evidence behind each, all (B, k) arrays (row -1 = no pick)."""

    rows: np.ndarray
    score: np.ndarray
    c_text: np.ndarray
    c_social: np.ndarray
    c_pop: np.ndarray
    n_eng: np.ndarray
    n_like: np.ndarray

    @staticmethod
    def empty(b: int) -> Top:
        z = np.zeros((b, 0), np.float32)
        zi = np.zeros((b, 0), np.int64)
        return Top(zi, z, z, z, z, zi, zi)


class Scorer:
    """Scores users against candidates; keeps reusable workspaces (one per engine, one thread)."""

    def __init__(self, store: Store, ann: AnnIndex) -> None:
        self.store, self.ann = store, ann
        self.allowed: np.ndarray | None = None  # item rows replacing the candidate pool (evaluation)
        self._bufs: dict[str, Tensor] = {}

    def user_vectors(self, rows: np.ndarray) -> Tensor:
        """q(u) (B, D); zero rows for unknown users (row -1)."""
        st = self.store
        q = torch.zeros(len(rows), st.dim, device=st.device)
        known = rows >= 0
        if known.any():
            kr = torch.from_numpy(rows[known]).to(st.device)
            v = st.interest[kr] + st.settings.zs_weight_social_tower * st.social_vec[kr]
            q[torch.from_numpy(np.nonzero(known)[0]).to(st.device)] = normalise(v)
        return q

    def item_vecs(self, rows: np.ndarray) -> Tensor:
        """item_emb rows, shaped like ``rows`` (a view when they are 0..n-1, the whole live catalogue)."""
        st = self.store
        flat = rows.reshape(-1)
        n = flat.shape[0]
        if rows.ndim == 1 and n and flat[0] == 0 and flat[-1] == n - 1 and (n == 1 or bool((np.diff(flat) == 1).all())):
            return st.item_emb[:n]
        # index_select, not item_emb[tensor]: advanced indexing took twice as long here
        out = st.item_emb.index_select(0, torch.from_numpy(flat).to(st.device))  # (N, D)
        return out.view(*rows.shape, st.dim)

    def _buf(self, name: str, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """A reusable flat workspace: large per-call temporaries would page-fault on every batch."""
        t = self._bufs.get(name)
        if t is None or t.numel() < n or t.dtype != dtype:
            t = self._bufs[name] = torch.empty(max(n, 1 << 16), dtype=dtype, device=self.store.device)
        return t[:n]

    def top(
        self, rows: np.ndarray, q: Tensor, now: float, k: int, model: ServingModel | None = None,
        query_vec: Tensor | None = None,
    ) -> Top:
        """Top-k per user with the evidence behind each pick; candidates and filters shared by all scorers.

        ``model``: a serving model whose ``score_users_items`` replaces the zero-shot score.
        ``query_vec`` (B, D): the words of a query per user (see the module docstring).
        """
        st = self.store
        s = st.settings
        b = len(rows)
        cand = candidates(st, self.ann, now, q if query_vec is None else query_vec, rows, self.allowed)
        c = len(cand)
        kk = min(k, c)
        if kk == 0 or b == 0:
            return Top.empty(b)
        dev = st.device
        x = self.item_vecs(cand)  # (C, D)
        key, dec, tag = social_keys(st, rows, cand, now)
        # exp(-sum of followees' decayed weights) per (user, item): 1 where no followee engaged
        damp = self._buf("raw", b * c).zero_().index_add_(0, key, dec).neg_().exp_()  # (B*C,)
        tags = self._buf("tags", b * c).zero_().index_add_(0, key, tag)
        pop = torch.from_numpy(popularity(st, now, cand)).to(dev)  # (C,)
        fn = getattr(model, "score_users_items", None) if model is not None else None
        text: Tensor | None = None  # (B, C) cosine: the zero-shot score; a model's needs it for its picks only
        if fn is not None:
            score = fn(st, rows, cand, now).float().contiguous()  # (B, C)
        else:
            text = torch.mm(q, x.T, out=self._buf("text", b * c).view(b, c))
            score = torch.mul(text, s.zs_weight_text, out=self._buf("score", b * c).view(b, c))
            score.add_(pop[None, :], alpha=s.zs_weight_popularity)
            score.add_(damp.view(b, c), alpha=-s.zs_weight_social).add_(s.zs_weight_social)  # + w_s * proof
        mask = mask_keys(st, rows, cand)
        if query_vec is not None:
            allowed = torch.ones(b * c, dtype=torch.bool, device=dev)
            allowed[torch.from_numpy(mask).to(dev)] = False
            rule = QueryRule(s.query_match_band, s.query_history_weight, s.query_match_floor)
            score, _ = query_scores(torch.mm(query_vec, x.T), score, allowed.view(b, c), rule)
        # equal scores (e.g. identical texts) rank by id, not by row order, so a restart ranks the same
        score.add_(torch.from_numpy(st.item_tb[cand]).to(dev)[None, :], alpha=TIE)
        if mask.size:
            score.view(-1).index_fill_(0, torch.from_numpy(mask).to(dev), NEG)
        top_s, top_i = torch.topk(score, kk, dim=1)
        flat = (torch.arange(b, device=dev)[:, None] * c + top_i).reshape(-1)
        ti = top_i.cpu().numpy()  # (B, k) positions in cand
        ts_np = top_s.float().cpu().numpy()
        tg = tags[flat].reshape(b, kk).cpu().numpy().astype(np.int64)
        valid = ts_np > NEG / 2
        if text is None:  # cos(q(u), e(i)) of the picks only: (B, k, D) x (B, D, 1)
            picked = torch.bmm(x[top_i], q.unsqueeze(2)).squeeze(2)
        else:
            picked = text.reshape(-1)[flat].reshape(b, kk)
        return Top(
            rows=np.where(valid, cand[ti], -1),
            score=ts_np,
            c_text=s.zs_weight_text * picked.cpu().numpy(),
            c_social=s.zs_weight_social * (1.0 - damp[flat]).reshape(b, kk).cpu().numpy(),
            c_pop=s.zs_weight_popularity * pop.cpu().numpy()[ti],
            n_eng=(tg % 4096).astype(np.int32),
            n_like=(tg // 4096).astype(np.int32),
        )

"""Scoring heads that fuse the text tower with the social tower.

``fused`` (default): item vector = collaborative item embedding + W_t·text(item); user vector =
GNN user embedding + W_u·interest(user); score = <user, item> / tau on L2-normalised vectors,
so user and item interact. ``additive``: f = sigmoid(W'h_text + U'h_user), kept as the reference
formula: the user term is a constant per user, so it ranks items the same for everyone.
``gnn`` / ``text``: the ablations (either tower alone, same dot-product scoring).

Every head has the same three verbs so the serving path never branches on the kind:
``item_vectors(collab, text) -> (C, k)``, ``user_vectors(h_user, interest) -> (B, k)``,
``score_many(user_vecs, item_vecs) -> (B, C)`` logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FusionKind = Literal["fused", "additive", "gnn", "text"]


@dataclass
class FusionConfig:
    kind: FusionKind = "fused"
    dim: int = 64  # collaborative / fused width
    text_dim: int = 384  # text tower width (MiniLM: 384)
    tau: float = 0.1  # softmax temperature of the cosine score
    text_scale: float = 1.0  # initial weight of the text projection relative to the collaborative part


class FusedHead(nn.Module):
    """Dot product of projected towers (cosine / tau): user-item interaction, cheap to serve."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        use_text = cfg.kind in ("fused", "text")
        self.item_text = nn.Linear(cfg.text_dim, cfg.dim, bias=False) if use_text else None
        self.user_text = nn.Linear(cfg.text_dim, cfg.dim, bias=False) if use_text else None
        if use_text:
            for lin in (self.item_text, self.user_text):
                assert lin is not None
                nn.init.normal_(lin.weight, std=cfg.text_scale / cfg.text_dim**0.5)

    def project_item_text(self, text: Tensor) -> Tensor | None:
        """W_t·text (C, d), or None when the head ignores text; serving caches it per item."""
        return self.item_text(text) if self.item_text is not None else None

    def item_vectors_from(self, collab: Tensor | None, text_proj: Tensor | None, n: int) -> Tensor:
        parts = []
        if self.cfg.kind in ("fused", "gnn") and collab is not None:
            parts.append(collab)
        if text_proj is not None:
            parts.append(text_proj)
        if not parts:
            return self._zeros(n)
        return F.normalize(torch.stack(parts).sum(0), dim=-1)  # (C, d)

    def _zeros(self, n: int) -> Tensor:
        p = next(self.parameters(), None)
        return torch.zeros(n, self.cfg.dim, device=p.device if p is not None else None)

    def item_vectors(self, collab: Tensor | None, text: Tensor) -> Tensor:
        """(C, d) from collaborative rows (C, d) (None or zeros for items never seen) and text (C, Dt)."""
        return self.item_vectors_from(collab, self.project_item_text(text), text.shape[0])

    def user_vectors(self, h_user: Tensor | None, interest: Tensor) -> Tensor:
        """(B, d) from GNN user rows (B, d) and the interest text vector (B, Dt)."""
        parts = []
        if self.cfg.kind in ("fused", "gnn") and h_user is not None:
            parts.append(h_user)
        if self.user_text is not None:
            parts.append(self.user_text(interest))
        if not parts:
            return interest.new_zeros(interest.shape[0], self.cfg.dim)
        return F.normalize(torch.stack(parts).sum(0), dim=-1)  # (B, d)

    def score_many(self, user_vecs: Tensor, item_vecs: Tensor) -> Tensor:
        return user_vecs @ item_vecs.T / self.cfg.tau  # (B, C)


class AdditiveHead(nn.Module):
    """f = sigmoid(W'h_text + U'h_user): separable, hence one ranking for every user."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.w = nn.Linear(cfg.text_dim, 1)
        self.u = nn.Linear(cfg.dim, 1, bias=False)

    def project_item_text(self, text: Tensor) -> Tensor:
        return self.w(text)  # (C, 1)

    def item_vectors_from(self, collab: Tensor | None, text_proj: Tensor | None, n: int) -> Tensor:
        assert text_proj is not None
        return text_proj  # (C, 1): the item term never sees the user

    def item_vectors(self, collab: Tensor | None, text: Tensor) -> Tensor:
        return self.w(text)  # (C, 1)

    def user_vectors(self, h_user: Tensor | None, interest: Tensor) -> Tensor:
        if h_user is None:
            return interest.new_zeros(interest.shape[0], 1)
        return self.u(h_user)  # (B, 1)

    def score_many(self, user_vecs: Tensor, item_vecs: Tensor) -> Tensor:
        return user_vecs + item_vecs.T  # (B, C) logits; sigmoid is monotone, ranking is this


def make_head(cfg: FusionConfig) -> FusedHead | AdditiveHead:
    return AdditiveHead(cfg) if cfg.kind == "additive" else FusedHead(cfg)

r"""Scoring heads that fuse the text tower with the social tower.

``fused`` (default): item vector = collaborative item embedding + W_t·text(item); user vector =
GNN user embedding + W_u·interest(user); score = <user, item> / tau on L2-normalised vectors,
so user and item interact. ``additive``: f = sigmoid(W'h_text + U'h_user), kept as the reference
formula: the user term is a constant per user, so it ranks items the same for everyone.
``gnn`` / ``text``: the ablations (either tower alone, same dot-product scoring).

``graph_half`` (``fused`` only): the collaborative input is twice as wide, ``[c_g | c_f]``; the first
half is a graph-only model and the second the fused one above, trained side by side on their own
losses (:meth:`FusedHead.halves`). Serving mixes them in one dot product,

.. math::
    s(u, i) = \big((1 - \alpha)\,\hat u_g^\top \hat\imath_g + \alpha\,\hat u_f^\top \hat\imath_f\big) / \tau,
    \qquad u = [\sqrt{1 - \alpha}\,\hat u_g \,|\, \sqrt{\alpha}\,\hat u_f],

with the text half's share :math:`\alpha` (``text_mix``) picked on validation after training
(``models/train.py``), so the model is never worse on validation than its graph part: where the
text says little, validation picks :math:`\alpha = 0` and the model is a GNN.

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
    graph_half: bool = False  # a second, graph-only half of the collaborative input (kind "fused")
    text_mix: float = 1.0  # alpha: the text half's share of the score when graph_half (0..1)


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

    @property
    def halved(self) -> bool:
        return self.cfg.graph_half and self.cfg.kind == "fused"

    def item_vectors_from(self, collab: Tensor | None, text_proj: Tensor | None, n: int) -> Tensor:
        if self.halved:
            g, f = self._split(collab)
            return self._mix(g, self._sum_unit([f, text_proj], n))
        return self._sum_unit([collab if self.cfg.kind in ("fused", "gnn") else None, text_proj], n)

    def _split(self, collab: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        d = self.cfg.dim
        return (None, None) if collab is None else (collab[:, :d], collab[:, d:])

    def _sum_unit(self, parts: list[Tensor | None], n: int, like: Tensor | None = None) -> Tensor:
        """normalize(sum of the given parts) (n, d); zeros (on ``like``'s device) when there is none."""
        given = [p for p in parts if p is not None]
        if not given:
            return like.new_zeros(n, self.cfg.dim) if like is not None else self._zeros(n)
        return F.normalize(torch.stack(given).sum(0), dim=-1)

    def _mix(self, graph: Tensor | None, fused: Tensor) -> Tensor:
        """[sqrt(1 - alpha) * unit(graph) | sqrt(alpha) * fused] (n, 2d): one dot product mixes the halves."""
        a = float(self.cfg.text_mix)
        g = F.normalize(graph, dim=-1) if graph is not None else torch.zeros_like(fused)
        return torch.cat([g * (1.0 - a) ** 0.5, fused * a**0.5], dim=1)

    def halves(self, vecs: Tensor) -> list[Tensor]:
        """The unit vectors of each half ((n, d) each) from mixed vectors; the whole when not halved.

        Training scores each half on its own (``text_mix`` is kept strictly inside (0, 1) then)."""
        if not self.halved:
            return [vecs]
        a, d = float(self.cfg.text_mix), self.cfg.dim
        if not 0.0 < a < 1.0:
            raise ValueError("the halves are only separable with 0 < text_mix < 1")
        return [vecs[:, :d] / (1.0 - a) ** 0.5, vecs[:, d:] / a**0.5]

    def set_text_mix(self, alpha: float) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"text_mix must lie in [0, 1], got {alpha}")
        self.cfg.text_mix = float(alpha)

    def _zeros(self, n: int) -> Tensor:
        p = next(self.parameters(), None)
        return torch.zeros(n, self.cfg.dim, device=p.device if p is not None else None)

    @property
    def width(self) -> int:
        """Width of the vectors this head returns."""
        return 2 * self.cfg.dim if self.halved else self.cfg.dim

    def item_vectors(self, collab: Tensor | None, text: Tensor) -> Tensor:
        """(C, d) from collaborative rows (C, d) (None or zeros for items never seen) and text (C, Dt)."""
        return self.item_vectors_from(collab, self.project_item_text(text), text.shape[0])

    def user_vectors(self, h_user: Tensor | None, interest: Tensor) -> Tensor:
        """(B, d) from GNN user rows (B, d) and the interest text vector (B, Dt); (B, 2d) when halved."""
        text = self.user_text(interest) if self.user_text is not None else None
        n = interest.shape[0]
        if self.halved:
            g, f = self._split(h_user)
            return self._mix(g, self._sum_unit([f, text], n, interest))
        return self._sum_unit([h_user if self.cfg.kind in ("fused", "gnn") else None, text], n, interest)

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

    def halves(self, vecs: Tensor) -> list[Tensor]:
        return [vecs]

    def set_text_mix(self, alpha: float) -> None:
        raise ValueError("the additive head has no halves to mix")

    def user_vectors(self, h_user: Tensor | None, interest: Tensor) -> Tensor:
        if h_user is None:
            return interest.new_zeros(interest.shape[0], 1)
        return self.u(h_user)  # (B, 1)

    def score_many(self, user_vecs: Tensor, item_vecs: Tensor) -> Tensor:
        return user_vecs + item_vecs.T  # (B, C) logits; sigmoid is monotone, ranking is this


def make_head(cfg: FusionConfig) -> FusedHead | AdditiveHead:
    return AdditiveHead(cfg) if cfg.kind == "additive" else FusedHead(cfg)

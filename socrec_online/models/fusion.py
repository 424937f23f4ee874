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
(``models/compose.py``: the graph part is the GNN validation picks, so the model is never worse on
validation than that GNN; where the text says little, :math:`\alpha = 0` and the model is it).

``pop_prior`` (:math:`\beta`, picked on validation after training: ``models/prior.py``) adds a
popularity term to every logit, :math:`s(u, i) \mathrel{+}= \beta \log(1 + n_i)` with :math:`n_i`
the item's users in the graph, as one more column of the vectors (:math:`\beta\tau` on the user's,
:math:`\log(1 + n_i)` on the item's), so serving still scores with one dot product.

Every head has the same three verbs so the serving path never branches on the kind:
``item_vectors(collab, text) -> (C, k)``, ``user_vectors(h_user, interest) -> (B, k)``,
``score_many(user_vecs, item_vecs) -> (B, C)`` logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FusionKind = Literal["fused", "additive", "gnn", "text"]


class Member(NamedTuple):
    """One trained model inside an ensemble of widths (``models/ensemble.py``)."""

    dim: int  # its width (each half's, when halved)
    text_mix: float  # its text half's share (halved members)
    share: float  # its weight in the ensemble's score (its share, rescaled to the ensemble's tau)


class Segment(NamedTuple):
    """A run of output columns normalised on its own and weighted in the score."""

    width: int
    collab: bool  # reads the next ``width`` collaborative columns
    text: bool  # reads the next ``width`` projected-text columns
    weight: float  # its share of the score (the columns are scaled by sqrt(weight))


@dataclass
class FusionConfig:
    kind: FusionKind = "fused"
    dim: int = 64  # collaborative / fused width
    text_dim: int = 384  # text tower width (MiniLM: 384)
    tau: float = 0.1  # softmax temperature of the cosine score
    text_scale: float = 1.0  # initial weight of the text projection relative to the collaborative part
    graph_half: bool = False  # a second, graph-only half of the collaborative input (kind "fused")
    text_mix: float = 1.0  # alpha: the text half's share of the score when graph_half (0..1)
    members: tuple[Member, ...] = ()  # an ensemble of widths; empty: one model of ``dim``
    pop_prior: float = 0.0  # beta: logit += beta * log(1 + item's users), picked on valid (0: none)

    @property
    def halved(self) -> bool:
        return self.graph_half and self.kind == "fused"

    def segments(self) -> list[Segment]:
        """The score's segments in column order: per member, ``[graph | fused]`` when halved, else one."""
        members = self.members or (Member(self.dim, self.text_mix, 1.0),)
        out: list[Segment] = []
        for m in members:
            if self.halved:
                out += [Segment(m.dim, True, False, m.share * (1.0 - m.text_mix)),
                        Segment(m.dim, True, True, m.share * m.text_mix)]
            else:
                out.append(Segment(m.dim, self.kind in ("fused", "gnn"), self.kind in ("fused", "text"), m.share))
        return out

    @property
    def collab_width(self) -> int:
        """Width of the collaborative input (ID embeddings, LightGCN rows)."""
        return sum(s.width for s in self.segments())

    @property
    def text_width(self) -> int:
        """Width of the text projections."""
        return sum(s.width for s in self.segments() if s.text)


class FusedHead(nn.Module):
    """Dot product of projected towers (cosine / tau): user-item interaction, cheap to serve.

    The vectors are segments (:class:`Segment`), each the unit vector of its collaborative columns
    plus its projected text, scaled by the square root of its weight, so one dot product is the
    weighted sum of the segments' cosines."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.segments = cfg.segments()
        use_text = cfg.kind in ("fused", "text")
        tw = cfg.text_width
        self.item_text = nn.Linear(cfg.text_dim, tw, bias=False) if use_text else None
        self.user_text = nn.Linear(cfg.text_dim, tw, bias=False) if use_text else None
        if use_text:
            for lin in (self.item_text, self.user_text):
                assert lin is not None
                nn.init.normal_(lin.weight, std=cfg.text_scale / cfg.text_dim**0.5)

    def project_item_text(self, text: Tensor) -> Tensor | None:
        """W_t·text (C, d), or None when the head ignores text; serving caches it per item."""
        return self.item_text(text) if self.item_text is not None else None

    def item_vectors_from(
        self, collab: Tensor | None, text_proj: Tensor | None, n: int, item_users: Tensor | None = None,
        prior: bool = True,
    ) -> Tensor:
        """(n, k) item vectors; ``item_users`` (n,): each item's users in the graph (the popularity
        column; None: zeros, as for an item nobody has touched)."""
        v = self._vectors(collab, text_proj, n, text_proj if text_proj is not None else collab)
        if not (prior and self.cfg.pop_prior):
            return v
        col = torch.log1p(item_users.to(v)) if item_users is not None else v.new_zeros(n)
        return torch.cat([v, col.unsqueeze(1)], dim=1)

    def _vectors(self, collab: Tensor | None, text: Tensor | None, n: int, like: Tensor | None) -> Tensor:
        """[sqrt(w_s) * unit(collab_s + text_s)] over the segments s (n, width); a segment with no
        input (a new item's collaborative part, a model without text) is zeros."""
        out, c0, t0 = [], 0, 0
        for seg in self.segments:
            parts = []
            if seg.collab and collab is not None:
                parts.append(collab[:, c0 : c0 + seg.width])
            if seg.text and text is not None:
                parts.append(text[:, t0 : t0 + seg.width])
            c0 += seg.width  # every segment has its collaborative columns (``collab_width``)
            t0 += seg.width if seg.text else 0
            if parts:
                v = F.normalize(torch.stack(parts).sum(0), dim=-1)
            else:
                v = like.new_zeros(n, seg.width) if like is not None else self._zeros(n, seg.width)
            out.append(v * seg.weight**0.5)
        return out[0] if len(out) == 1 else torch.cat(out, dim=1)

    def halves(self, vecs: Tensor) -> list[Tensor]:
        """The unit vectors of each segment ((n, d) each) from mixed vectors; the whole when there
        is one segment.

        Training scores each half on its own (``text_mix`` is kept strictly inside (0, 1) then)."""
        if len(self.segments) == 1:
            return [vecs]
        if any(s.weight <= 0.0 for s in self.segments):
            raise ValueError("the halves are only separable with 0 < text_mix < 1")
        out, c0 = [], 0
        for seg in self.segments:
            out.append(vecs[:, c0 : c0 + seg.width] / seg.weight**0.5)
            c0 += seg.width
        return out

    def set_text_mix(self, alpha: float) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"text_mix must lie in [0, 1], got {alpha}")
        if self.cfg.members:
            raise ValueError("an ensemble's members keep the text shares they were picked with")
        self.cfg.text_mix = float(alpha)
        self.segments = self.cfg.segments()

    def set_pop_prior(self, beta: float) -> None:
        self.cfg.pop_prior = float(beta)

    def _zeros(self, n: int, width: int) -> Tensor:
        p = next(self.parameters(), None)
        return torch.zeros(n, width, device=p.device if p is not None else None)

    def item_vectors(
        self, collab: Tensor | None, text: Tensor, item_users: Tensor | None = None, prior: bool = True
    ) -> Tensor:
        """(C, k) from collaborative rows (C, d) (None or zeros for items never seen) and text (C, Dt)."""
        return self.item_vectors_from(collab, self.project_item_text(text), text.shape[0], item_users, prior)

    def user_vectors(self, h_user: Tensor | None, interest: Tensor, prior: bool = True) -> Tensor:
        """(B, k) from GNN user rows (B, d) and the interest text vector (B, Dt); (B, 2d) when halved.

        ``prior=False`` leaves the popularity column out (training: the term is picked after it). A
        user with no vector at all (nothing known of them) gets no popularity term either: it corrects
        the model's bias, and there is no model term to correct."""
        text = self.user_text(interest) if self.user_text is not None else None
        v = self._vectors(h_user, text, interest.shape[0], interest)
        if not (prior and self.cfg.pop_prior):
            return v
        known = (v != 0).any(dim=1, keepdim=True).to(v.dtype)
        return torch.cat([v, known * (self.cfg.pop_prior * self.cfg.tau)], dim=1)

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

    def item_vectors_from(
        self, collab: Tensor | None, text_proj: Tensor | None, n: int, item_users: Tensor | None = None,
        prior: bool = True,
    ) -> Tensor:
        assert text_proj is not None
        return text_proj  # (C, 1): the item term never sees the user (and takes no popularity term)

    def item_vectors(
        self, collab: Tensor | None, text: Tensor, item_users: Tensor | None = None, prior: bool = True
    ) -> Tensor:
        return self.w(text)  # (C, 1)

    def halves(self, vecs: Tensor) -> list[Tensor]:
        return [vecs]

    def set_text_mix(self, alpha: float) -> None:
        raise ValueError("the additive head has no halves to mix")

    def set_pop_prior(self, beta: float) -> None:
        raise ValueError("the additive head takes no popularity term")

    def user_vectors(self, h_user: Tensor | None, interest: Tensor, prior: bool = True) -> Tensor:
        if h_user is None:
            return interest.new_zeros(interest.shape[0], 1)
        return self.u(h_user)  # (B, 1)

    def score_many(self, user_vecs: Tensor, item_vecs: Tensor) -> Tensor:
        return user_vecs + item_vecs.T  # (B, C) logits; sigmoid is monotone, ranking is this


def make_head(cfg: FusionConfig) -> FusedHead | AdditiveHead:
    return AdditiveHead(cfg) if cfg.kind == "additive" else FusedHead(cfg)

r"""An ensemble of widths: models trained at different embedding widths, served as one model.

The widths ``--dim auto`` tries are each trained to their own best; instead of keeping one, the
ensemble scores with every one, weighted by shares :math:`\beta_m` picked on validation:

.. math::
    s(u, i) = \frac{1}{\tau} \sum_m \beta_m \sum_{s \in m} w_s \cos(u_s, i_s),
    \qquad \sum_m \beta_m = 1,

where :math:`s` runs over a member's segments (its graph and fused halves, weighted by its text
share). LightGCN propagates each column on its own and the head normalises each segment on its
own, so the sum is one model whose ID embeddings and text projections are the members'
concatenated (``FusionConfig.members``): serving, snapshots and fine-tuning see one model. A
share of 1 on one member is that member alone, so the pick validates at least as well as the best
single width.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from socrec_online.eval.metrics import evaluate_full_ranking
from socrec_online.eval.selection import best_on_valid
from socrec_online.eval.splits import Split
from socrec_online.models.fusion import Member
from socrec_online.models.recommender import FusedRecommender

if TYPE_CHECKING:
    from socrec_online.models.train import Fitted

SHARE_STEP = 0.1
"""The grid of members' shares validation searches (all shares on multiples of it, summing to 1)."""

SHARE_KEY = "width_share@"
"""Prefix of the picked shares in a kept model's valid metrics (``width_share@256``)."""

GRAPH_SHARE_KEY = "graph_share@"
"""Prefix of a composed model's graph-part shares (``models/compose.py``; ``graph_share@256``)."""

TEXT_GAIN_KEY = "text_gain"
"""A composed model's valid NDCG@10 gain of its best text share over its GNN pick, and (``_se``)
that gain's standard error, in its valid metrics."""

_SAME = ("n_users", "n_items", "kind", "text_dim", "n_layers", "social_weight", "weighting", "graph_half")


def assemble(models: Sequence[FusedRecommender], shares: Sequence[float]) -> FusedRecommender:
    """One model whose logit is ``sum_m shares[m] * (member m's logit)``: the members' weights
    concatenated, their configs as ``members`` (weights ``shares[m] * tau / tau_m``, ``tau`` the
    largest share's member's)."""
    if len(models) != len(shares) or not models:
        raise ValueError("one share per member, at least one member")
    if any(b <= 0.0 for b in shares) or abs(sum(shares) - 1.0) > 1e-6:
        raise ValueError(f"shares must be positive and sum to 1, got {list(shares)}")
    k = max(range(len(models)), key=lambda m: shares[m])
    tau = models[k].cfg.tau
    return merge(models, [Member(m.cfg.dim, m.cfg.text_mix, float(b) * tau / m.cfg.tau) for m, b in zip(models, shares)], k)


def merge(
    models: Sequence[FusedRecommender], members: Sequence[Member], lead: int, text_mix: float | None = None
) -> FusedRecommender:
    """One model of ``models``' weights concatenated, scored as ``members`` say (a member's segment
    weights are logit weights times ``models[lead]``'s temperature, which the model takes, as its
    reported ``text_mix`` unless given)."""
    if len(models) != len(members) or not models:
        raise ValueError("one member per model, at least one model")
    first = models[0].cfg
    for m in models:
        if m.cfg.members or m.cfg.text_in_graph or m.cfg.pop_prior:
            raise ValueError("members are single models without text in the graph or a popularity term")
        if any(getattr(m.cfg, k) != getattr(first, k) for k in _SAME):
            raise ValueError(f"members differ in one of {', '.join(_SAME)}")
    top = models[lead].cfg
    cfg = replace(first, dim=top.dim, tau=top.tau, text_mix=top.text_mix if text_mix is None else text_mix,
                  members=tuple(members))
    states = [m.state_dict() for m in models]
    out = FusedRecommender(cfg)
    merged = {k: torch.cat([s[k] for s in states], dim=1 if k.endswith("_emb") else 0) for k in states[0]}
    out.load_state_dict(merged, strict=True)
    out.eval()
    return out


def share_grid(n: int, step: float = SHARE_STEP) -> list[tuple[float, ...]]:
    """Every split of 1 into ``n`` shares on multiples of ``step`` (``n == 2``: (1, 0), (0.9, 0.1), ...)."""
    k = round(1 / step)
    return [tuple(c / k for c in combo) + ((k - sum(combo)) / k,)
            for combo in itertools.product(range(k + 1), repeat=n - 1) if sum(combo) <= k]


@torch.no_grad()
def shares_on_valid(fits: Sequence[Fitted], split: Split) -> tuple[tuple[float, ...], dict[str, float]]:
    """The members' shares on ``share_grid`` with the best valid NDCG@10, and that pick's valid metrics.

    Each member's vectors are computed once; a candidate is their concatenation with each member
    scaled by the square root of its share (what ``assemble`` serves)."""
    vecs: list[tuple[Tensor, Tensor]] = []
    for f in fits:
        dev = f.model.user_emb.device
        uv, iv = f.model.full_vectors(f.graph, f.item_text.to(dev), f.interest.to(dev), prior=False)
        vecs.append((uv.cpu() * (fits[0].model.cfg.tau / f.model.cfg.tau), iv.cpu()))  # its logits, up to one scale

    def valid(shares: tuple[float, ...]) -> dict[str, float]:
        uv = torch.cat([u * b**0.5 for (u, _), b in zip(vecs, shares)], dim=1)
        iv = torch.cat([i * b**0.5 for (_, i), b in zip(vecs, shares)], dim=1)
        return evaluate_full_ranking(lambda ub: uv[ub] @ iv.T, split.n_users, split.n_items, (split.train,), split.valid)

    return best_on_valid(share_grid(len(fits)), valid)


def ensemble_on_valid(fits: Sequence[Fitted], split: Split) -> Fitted:
    """The ensemble of ``fits`` (same data, different widths) at the shares validation picks, as a
    ``Fitted``; the best single member itself when the pick gives it every share."""
    from socrec_online.models.train import Fitted

    shares, metrics = shares_on_valid(fits, split)
    kept = [(f, b) for f, b in zip(fits, shares) if b > 0.0]
    by_width = {f"{SHARE_KEY}{f.model.cfg.dim}": b for f, b in zip(fits, shares)}
    lead = max(kept, key=lambda fb: fb[1])[0]
    result = replace(lead.result, best_valid=lead.result.best_valid | metrics | by_width,
                     best_epoch=max(f.result.best_epoch for f, _ in kept),
                     seconds=sum(f.result.seconds for f in fits))
    if len(kept) == 1:
        return replace(lead, result=result)
    model = assemble([f.model for f, _ in kept], [b for _, b in kept])
    return Fitted(model.to(lead.model.user_emb.device), lead.graph, lead.item_text, lead.interest, result)


def width_shares(valid: dict[str, float], key: str = SHARE_KEY) -> dict[str, float]:
    """The shares by width (``{"128": 0.3, "256": 0.7}``) a pick recorded in its valid metrics under
    the prefix ``key``."""
    return {k.removeprefix(key): v for k, v in valid.items() if k.startswith(key)}

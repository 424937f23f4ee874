r"""The kept fused model, composed from its trained halves: the GNN validation would pick, plus text.

Every halved run (one per width :math:`w` and temperature) trains a graph-only half, drawn and
trained as ``kind="gnn"`` at the same seed, beside a fused half (``models/fusion.py``). The kept
model scores

.. math::
    s(u, i) = (1 - \alpha) \sum_w g_w \frac{\cos_{g,w}(u, i)}{\tau_{g,w}}
            + \alpha \sum_w f_w \frac{\cos_{f,w}(u, i)}{\tau_{f,w}} + \beta \log(1 + n_i).

- The graph part is picked on the graph halves alone, as ``lightgcn`` is: at each width the
  temperature :math:`\tau_{g,w}` whose graph half validates best, then the widths' shares
  :math:`g`. So it is that GNN, weight for weight.
- The fused part is picked the same way on the fused halves alone (:math:`\tau_{f,w}`, :math:`f`).
- The text share :math:`\alpha` and the popularity weight :math:`\beta` are picked together on
  validation. :math:`(0, \beta_{\mathrm{GNN}})`, the GNN with its own popularity term, is among the
  candidates, so the text is added on top of the best graph model, never traded against a weaker one.
- The text is kept only when its valid gain over that GNN is at least ``TEXT_EVIDENCE`` standard
  errors of the per-user gain (``eval/paired.py``); a smaller gain is one another draw of valid
  users could reverse (the one-standard-error rule), and the model stays the GNN: never worse than
  its graph part where the text says little.

Served as one model (``models/ensemble.merge``): per width, one run's weights with the graph half
of the run at :math:`\tau_{g,w}`, its two segments weighted as the formula says.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from socrec_online.eval.metrics import PerUser, per_user_full_ranking
from socrec_online.eval.paired import paired_difference
from socrec_online.eval.selection import best_on_valid
from socrec_online.eval.splits import Split
from socrec_online.models.ensemble import GRAPH_SHARE_KEY, SHARE_KEY, TEXT_GAIN_KEY, merge, share_grid
from socrec_online.models.fusion import Member
from socrec_online.models.prior import PRIOR_GRID, PRIOR_KEY

if TYPE_CHECKING:
    from socrec_online.models.train import Fitted

TEXT_SHARES = tuple(i / 10 for i in range(11))
"""The text shares :math:`\\alpha` searched (0: the graph part alone)."""

TEXT_EVIDENCE = 1.0
"""How many standard errors of the per-user valid NDCG@10 gain over the GNN pick the text must
show to be kept."""

CACHE_MAX = 1 << 27
"""Valid logits kept in memory for the joint search, in floats per part (512 MiB); larger
datasets recompute each candidate's logits from the vectors."""

Half = tuple[Tensor, Tensor, float]  # (user unit vectors (U, d), item unit vectors (I, d), 1 / tau)


@torch.no_grad()
def halves_of(f: Fitted) -> tuple[Half, Half]:
    """The graph and fused halves of a halved run, as unit vectors and their logit scale."""
    m = f.model
    keep = m.cfg.text_mix
    m.set_text_mix(0.5)
    dev = m.user_emb.device
    uv, iv = m.full_vectors(f.graph, f.item_text.to(dev), f.interest.to(dev), prior=False)
    (ug, uf), (ig, i_f) = m.head.halves(uv), m.head.halves(iv)
    m.set_text_mix(keep)
    return (ug, ig, 1.0 / m.cfg.tau), (uf, i_f, 1.0 / m.cfg.tau)


class Part:
    """A weighted sum of halves' logits, :math:`\\sum_h w_h \\cos_h / \\tau_h`, for a user batch;
    cached per batch while it fits ``CACHE_MAX``."""

    def __init__(self, halves: Sequence[tuple[float, Half]], cache: bool) -> None:
        kept = [(w * h[2], h) for w, h in halves if w > 0.0]
        self.uv = torch.cat([h[0] * w**0.5 for w, h in kept], dim=1)
        self.iv = torch.cat([h[1] * w**0.5 for w, h in kept], dim=1)
        self.cache: dict[bytes, Tensor] | None = {} if cache else None

    def __call__(self, ub: Tensor) -> Tensor:
        if self.cache is None:
            return self.uv[ub] @ self.iv.T
        key = ub.cpu().numpy().tobytes()
        if key not in self.cache:
            self.cache[key] = self.uv[ub] @ self.iv.T
        return self.cache[key]


def _valid(score: Callable[[Tensor], Tensor], split: Split, dev: torch.device) -> dict[str, float]:
    return _per_user(score, split, dev).means()


def _per_user(score: Callable[[Tensor], Tensor], split: Split, dev: torch.device) -> PerUser:
    return per_user_full_ranking(score, split.n_users, split.n_items, (split.train,), split.valid, device=dev)


def _pick_part(halves: Sequence[Sequence[Half]], split: Split, dev: torch.device) -> tuple[list[int], tuple[float, ...]]:
    """Per width the run whose half validates best (ties: the earliest), then the widths' shares."""
    def best_run(hs: Sequence[Half]) -> int:
        return best_on_valid(range(len(hs)), lambda k: _valid(Part([(1.0, hs[k])], False), split, dev))[0]

    runs = [best_run(hs) for hs in halves]
    if len(halves) == 1:
        return runs, (1.0,)
    shares, _ = best_on_valid(share_grid(len(halves)), lambda b: _valid(
        Part([(s, hs[k]) for s, hs, k in zip(b, halves, runs)], False), split, dev))
    return runs, shares


@torch.no_grad()
def compose_on_valid(runs: Sequence[Sequence[Fitted]], split: Split) -> Fitted:
    """The kept model of halved runs (``runs[w][t]``: width ``w``, temperature ``t``, one graph and
    data), picked on ``split``'s valid part as the module says, with its picks in its valid metrics."""
    from socrec_online.models.train import Fitted

    if not runs or not all(runs):
        raise ValueError("no run to compose")
    first = runs[0][0]
    if not first.model.cfg.halved or first.graph is None:
        raise ValueError("composing needs halved fused runs with a graph")
    dev = first.model.user_emb.device
    pairs = [[halves_of(f) for f in per_width] for per_width in runs]
    g_run, g_share = _pick_part([[g for g, _ in p] for p in pairs], split, dev)
    f_run, f_share = _pick_part([[f for _, f in p] for p in pairs], split, dev)
    n_valid = int(np.unique(split.valid.user).size)
    cache = n_valid * split.n_items <= CACHE_MAX
    graph = Part([(s, pairs[w][k][0]) for w, (s, k) in enumerate(zip(g_share, g_run))], cache)
    fused = Part([(s, pairs[w][k][1]) for w, (s, k) in enumerate(zip(f_share, f_run))], cache)
    log_users = torch.log1p(first.graph.item_degree()).to(dev)  # (I,)

    def per_user(ab: tuple[float, float]) -> PerUser:
        a, b = ab
        return _per_user(lambda ub: (1.0 - a) * graph(ub) + a * fused(ub) + b * log_users, split, dev)

    betas = sorted(PRIOR_GRID, key=abs)  # ties: beta near 0
    graph_only = [(0.0, b) for b in betas]
    grid = [(a, b) for a in TEXT_SHARES for b in betas]  # ties: less text
    seen = {ab: per_user(ab).means() for ab in dict.fromkeys(graph_only + grid)}
    gnn, gnn_metrics = best_on_valid(graph_only, seen.__getitem__)
    (alpha, beta), metrics = best_on_valid(grid, seen.__getitem__)
    gain = paired_difference(per_user((alpha, beta)), per_user(gnn), ("ndcg@10",))["ndcg@10"]
    if gain["diff"] < TEXT_EVIDENCE * gain["se"]:
        (alpha, beta), metrics = gnn, gnn_metrics

    models, members, bases = [], [], []
    for w, per_width in enumerate(runs):
        gw = (1.0 - alpha) * g_share[w] / per_width[g_run[w]].model.cfg.tau  # logit weights
        fw = alpha * f_share[w] / per_width[f_run[w]].model.cfg.tau
        if gw + fw <= 0.0:
            continue
        fit = per_width[f_run[w]] if fw > 0.0 else per_width[g_run[w]]
        base = copy.deepcopy(fit.model)
        src = per_width[g_run[w]].model.part_views()[0][1]
        for name, dst in base.part_views()[0][1].items():
            dst.copy_(src[name].detach())
        models.append(base)
        members.append((base.cfg.dim, fw / (gw + fw), gw + fw))
        bases.append((w, fit))
    lead = max(range(len(members)), key=lambda k: members[k][2])
    tau = models[lead].cfg.tau
    model = merge(models, [Member(d, mix, s * tau) for d, mix, s in members], lead, text_mix=alpha)
    model.set_pop_prior(beta)
    w_lead, lead_fit = bases[lead]
    dims = [per_width[0].model.cfg.dim for per_width in runs]
    kept = (lead_fit.result.best_valid | metrics
            | {"text_mix": alpha, PRIOR_KEY: beta, "graph_tau": runs[w_lead][g_run[w_lead]].model.cfg.tau}
            | {TEXT_GAIN_KEY: gain["diff"], f"{TEXT_GAIN_KEY}_se": gain["se"]}
            | {f"{SHARE_KEY}{d}": s for d, s in zip(dims, f_share)}
            | {f"{GRAPH_SHARE_KEY}{d}": s for d, s in zip(dims, g_share)})
    result = replace(lead_fit.result, best_valid=kept,
                     best_epoch=max(f.result.best_epoch for per_width in runs for f in per_width),
                     seconds=sum(f.result.seconds for per_width in runs for f in per_width))
    return Fitted(model.to(dev), lead_fit.graph, lead_fit.item_text, lead_fit.interest, result)

r"""The popularity term: how much a trained model's logits should lean away from (or toward) popular items.

A softmax over all items fits the training part's popularity, and the items a user meets next need
not follow it: the right weight may lean away from popular items or toward them. Logit
adjustment (Menon et al., ICLR 2021) corrects the trained logits by the log of the prior; here by the
item's users in the graph, with a weight picked on validation after training:

.. math::
    s'(u, i) = s(u, i) + \beta \log(1 + n_i),

with :math:`\beta` on ``PRIOR_GRID`` (0 among them, so the pick validates at least as well as the
model without the term). The term is never trained against: training and fine-tuning score without
it (``prior=False``), or they would learn to undo it. Serving adds it as one more column of the
vectors (``models/fusion.py``); :math:`n_i` grows with the live graph.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from socrec_online.eval.metrics import evaluate_full_ranking
from socrec_online.eval.selection import best_on_valid
from socrec_online.eval.splits import Split

if TYPE_CHECKING:
    from socrec_online.models.train import Fitted

PRIOR_STEP = 0.05
PRIOR_GRID = tuple(round(PRIOR_STEP * k, 2) for k in range(-10, 11))
"""The weights :math:`\\beta` validation searches: -0.5 to 0.5 in steps of 0.05 (logit per unit of
:math:`\\log(1 + n_i)`)."""

PRIOR_KEY = "pop_prior"
"""The picked weight in a kept model's valid metrics."""


@torch.no_grad()
def prior_on_valid(fitted: Fitted, split: Split) -> Fitted:
    """``fitted`` with the popularity weight on ``PRIOR_GRID`` that has the best valid NDCG@10 set on
    its model (ties: the weight nearest 0), that pick's valid metrics in its result. A model without
    a graph (text only, additive) is returned as it is."""
    model, graph = fitted.model, fitted.graph
    if graph is None or not model.uses_graph or model.cfg.kind == "additive":
        return fitted
    dev = model.user_emb.device
    model.eval()
    uv, iv = model.full_vectors(graph, fitted.item_text.to(dev), fitted.interest.to(dev), prior=False)
    log_users = torch.log1p(graph.item_degree()).to(dev)  # (I,)

    def valid(beta: float) -> dict[str, float]:
        return evaluate_full_ranking(lambda ub: model.score_many(uv[ub], iv) + beta * log_users,
                                     split.n_users, split.n_items, (split.train,), split.valid, device=dev)

    beta, metrics = best_on_valid(sorted(PRIOR_GRID, key=abs), valid)
    model.set_pop_prior(beta)
    kept = fitted.result.best_valid | metrics | {PRIOR_KEY: beta}
    return replace(fitted, result=replace(fitted.result, best_valid=kept))

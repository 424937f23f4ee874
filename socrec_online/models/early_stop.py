"""Early stopping per independently trained part of a model, on valid NDCG@10.

A plain model is one part. A halved fused model (``models/fusion.py``) is two that share one set of
tensors but no weight: its graph-only half (the first ``dim`` columns of the ID embeddings) and its
fused half (the rest). Each half keeps the weights of its own best validation and runs out of
patience on its own, so the graph half is as converged as a GNN trained alone even where the fused
half peaks earlier; training stops when every part has run out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

MAX_EPOCHS = 400
"""Upper bound on epochs: training ends when every part runs out of patience on valid (or at the
time budget), so the bound only matters where a small dataset takes one step per epoch."""

Views = Callable[[], dict[str, Tensor]]
"""The part's weights as views into the model's tensors (writing to them writes the model)."""


@dataclass
class Keeper:
    """The best validation of one part so far, the part's weights then, and the evaluations since."""

    name: str
    views: Views
    best: dict[str, float] = field(default_factory=lambda: {"ndcg@10": -1.0})
    epoch: int = 0
    bad: int = 0
    state: dict[str, Tensor] = field(default_factory=dict)

    def offer(self, metrics: dict[str, float], epoch: int) -> bool:
        """Keep the part's weights if ``metrics`` beat the best so far; else count one more bad evaluation."""
        if metrics["ndcg@10"] > self.best["ndcg@10"]:
            self.best, self.epoch, self.bad = metrics, epoch, 0
            self.state = {k: v.detach().clone() for k, v in self.views().items()}
            return True
        self.bad += 1
        return False

    def out_of_patience(self, patience: int) -> bool:
        return self.bad >= patience

    @torch.no_grad()
    def restore(self) -> None:
        """Write the kept weights back into the model (nothing kept yet: leave the model as it is)."""
        for k, v in self.views().items():
            if k in self.state:
                v.copy_(self.state[k])

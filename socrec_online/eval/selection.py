"""Picking on validation: the candidate with the best valid NDCG@10, one rule for every search
(the text share, the widths' shares, the popularity term's weight)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

VALID_KEY = "ndcg@10"
"""The valid metric every pick maximises."""


def best_on_valid(candidates: Iterable[T], valid_metrics: Callable[[T], dict[str, float]]) -> tuple[T, dict[str, float]]:
    """The candidate whose ``valid_metrics`` has the highest ``VALID_KEY``, and those metrics; ties
    go to the earliest candidate, so order them by preference (the weight nearest 0 first)."""
    best: tuple[T, dict[str, float]] | None = None
    for c in candidates:
        m = valid_metrics(c)
        if best is None or m[VALID_KEY] > best[1][VALID_KEY]:
            best = (c, m)
    if best is None:
        raise ValueError("no candidate to pick from")
    return best


__all__ = ["VALID_KEY", "best_on_valid"]

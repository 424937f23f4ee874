"""Training labels that listen to comments: a pair the user panned in words is not a positive.

The serving engine weighs an engagement click 1 / like 2, plus ``comment_weight(sentiment)`` per
comment, and a negative comment after a click caps the pair at the comment's own weight (see
service/engine.py). Offline training uses the same rule: with sentiment weighting on, a
(user, item) pair whose net weight is <= 0 is dropped from the positives; with it off
(``aware=False``: every comment counts positive) every engaged pair stays, as before.

Measured (``socrec bench sentiment --trained-models lightgcn``, synthetic, 3 seeds): dropping the
panned pairs LOWERED LightGCN's Recall@10 (0.046 vs 0.050; a click, even a regretted one, is
still co-engagement evidence), so ``socrec train`` does not apply this; the bench keeps it as the
measured alternative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from socrec_online.data.base import KIND_LIKE, CommentRow, Interactions
from socrec_online.service.state import W_CLICK, W_LIKE, comment_weight


def net_pair_weights(
    inter: Interactions, comments: Sequence[CommentRow], sentiment: Callable[[str], float], aware: bool = True
) -> dict[tuple[int, int], float]:
    """(user, item) -> net engagement weight after its comments, in time order."""
    w: dict[tuple[int, int], float] = {}
    for u, i, k in zip(inter.user.tolist(), inter.item.tolist(), inter.kind.tolist(), strict=True):
        w[(u, i)] = w.get((u, i), 0.0) + (W_LIKE if k == KIND_LIKE else W_CLICK)
    for c in sorted(comments, key=lambda c: c.ts):
        s = sentiment(c.text)
        if not aware:
            s = abs(s)
        cw = comment_weight(s)
        prev = w.get((c.user, c.item))
        if s < 0 and prev is not None:
            cw = min(cw, cw - prev)  # the engine's rule: words override the implicit click
        w[(c.user, c.item)] = (prev or 0.0) + cw
    return w


def sentiment_labels(
    inter: Interactions, comments: Sequence[CommentRow], sentiment: Callable[[str], float], aware: bool = True
) -> Interactions:
    """``inter`` without the pairs whose net weight is <= 0 (none are dropped when ``aware`` is False)."""
    if not comments or not len(inter):
        return inter
    w = net_pair_weights(inter, comments, sentiment, aware)
    keep = np.fromiter(
        (w[(u, i)] > 0 for u, i in zip(inter.user.tolist(), inter.item.tolist(), strict=True)), bool, len(inter)
    )
    return inter.subset(keep)


__all__ = ["net_pair_weights", "sentiment_labels"]

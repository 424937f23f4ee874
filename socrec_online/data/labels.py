"""Training labels and interest history from a dataset, by the serving rules.

The offline trainer replays the training interactions and their comments, in the order
``Dataset.events`` publishes them, through ``engagement.PairLedger``: the arithmetic of the
activity table. A (user, item) pair whose net weight is <= 0 ("click, then this is awful") is
not a positive, just as the served model's graph drops it; its (negative) weight still shapes the
user's interest vector, as in serving. With sentiment weighting off (``aware=False``, the
ablation) every comment counts positive and every engaged pair stays.

Which comments count: those on a pair of the training part (a comment on a held-out pair would
reveal it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from socrec_online.data.base import CommentRow, Interactions
from socrec_online.engagement import Engaged, Kind, PairLedger, is_positive, signed


@dataclass
class Labels:
    """What the trainer learns from: the positives and the ledger of every training pair."""

    positives: Interactions  # the rows of the training interactions whose pair nets above zero
    pairs: dict[tuple[int, int], Engaged]  # (user row, item row) -> net weight, latest time, kinds; newest last
    comments: list[tuple[int, float, float]]  # (user row, ts, signed sentiment), time order
    comment_rows: list[int]  # index in the dataset's comments of each entry above


def replay(
    inter: Interactions, comments: Sequence[CommentRow], sentiment: Callable[[str], float], aware: bool = True
) -> Labels:
    """Replay interactions and the comments on their pairs in time order (a comment before an
    interaction of the same time, as ``Dataset.events``) through the engagement rules."""
    ledger: PairLedger[int] = PairLedger(sentiment_weighting=aware)
    have = set(zip(inter.user.tolist(), inter.item.tolist(), strict=True))
    mine = [k for k, c in enumerate(comments) if (c.user, c.item) in have]
    timeline = [(float(t), 1, k) for k, t in enumerate(inter.ts.tolist())]
    timeline += [(comments[k].ts, 0, k) for k in mine]
    timeline.sort(key=lambda x: (x[0], x[1]))
    kept: list[tuple[int, float, float]] = []
    rows: list[int] = []
    for t, is_inter, k in timeline:
        if is_inter:
            u, i = int(inter.user[k]), int(inter.item[k])
            if inter.kind[k] == Kind.LIKE:
                ledger.like(u, i, t)
            else:
                ledger.click(u, i, t)
        else:
            c = comments[k]
            s = sentiment(c.text)
            ledger.comment(c.user, c.item, c.ts, s)
            kept.append((c.user, c.ts, signed(s, aware)))
            rows.append(k)
    keep = np.fromiter(
        (is_positive(ledger.weight(u, i)) for u, i in zip(inter.user.tolist(), inter.item.tolist(), strict=True)),
        bool,
        len(inter),
    )
    return Labels(inter.subset(keep), ledger.pairs, kept, rows)


def net_pair_weights(
    inter: Interactions, comments: Sequence[CommentRow], sentiment: Callable[[str], float], aware: bool = True
) -> dict[tuple[int, int], float]:
    """(user, item) -> net engagement weight after its comments, in time order."""
    return {k: e[0] for k, e in replay(inter, comments, sentiment, aware).pairs.items()}


def sentiment_labels(
    inter: Interactions, comments: Sequence[CommentRow], sentiment: Callable[[str], float], aware: bool = True
) -> Interactions:
    """``inter`` without the pairs whose net weight is <= 0 (none are dropped when ``aware`` is False)."""
    if not comments or not len(inter):
        return inter
    return replay(inter, comments, sentiment, aware).positives


__all__ = ["Labels", "net_pair_weights", "replay", "sentiment_labels"]

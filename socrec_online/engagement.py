"""The engagement rules, in one place: interaction kinds, what each one weighs, and when a
(user, item) pair counts as a positive.

Serving (``service/apply.py``: the activity table's weights, the trained model's graph), the
offline trainer's labels (``data/labels.py``) and the online fine-tune's buffer
(``online/buffer.py``) all read these rules here, so a model is trained on the labels it is
served with.

Per (user, item) pair the net weight ``w`` is the sum of its events' gains, in event order::

    click    +1   (+0.3 when the dwell was under 1 s); the pair's clicks stop adding at 3
    like     +2   once; an unlike takes the 2 back
    comment  cw = 0.5 + 1.5 s   (s: the text's sentiment in [-1, 1], VADER compound)
             s < 0 after other engagement: min(cw, cw - w), "this is awful" after a click
             leaves the pair at most at cw (< 0.5), below zero for a clearly negative text

A pair is a positive (an edge of the served model's graph, a training label) iff ``w > 0``.
With sentiment weighting off (``SOCREC_SENTIMENT_WEIGHTING=false``, the ablation) the sign of
``s`` is ignored: every comment counts positive.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Generic, TypeVar


class Kind(IntFlag):
    """The kinds of engagement with an item, as bits: a pair's entry in the activity table keeps
    the union of its kinds (these values are stored there, so they never change)."""

    CLICK = 1
    LIKE = 2
    COMMENT = 4


W_CLICK = 1.0
"""A click: the weakest positive signal."""
W_BOUNCE = 0.3
"""A click with dwell under BOUNCE_MS: probably not interested."""
BOUNCE_MS = 1000
W_LIKE = 2.0
W_CLICK_CAP = 3.0
"""Repeated clicks on one item stop adding after this (a refresh loop is not love)."""
COMMENT_BASE, COMMENT_SENTIMENT = 0.5, 1.5
"""A comment weighs BASE + SENTIMENT * compound sentiment in [-1, 1]: 'this is awful' is negative."""
COMMENT_TEXT_WEIGHT = 0.5
"""A comment's own text enters the writer's interest vector at this times its sentiment."""
MAX_COMMENTS = 10
"""Comment texts kept per user for the interest vector."""

Engaged = tuple[float, float, int]
"""A pair's state: (net weight, latest event time, Kind bits); the activity table's ``recent`` values."""


def comment_weight(sentiment: float) -> float:
    """What a comment of this sentiment weighs on its own: 0.5 + 1.5 s."""
    return COMMENT_BASE + COMMENT_SENTIMENT * sentiment


def signed(sentiment: float, weighting: bool) -> float:
    """The sentiment the rules use: as scored, or its absolute value with weighting off."""
    return sentiment if weighting else abs(sentiment)


def click_gain(prev: Engaged | None, dwell_ms: int | None = None) -> float:
    """What a click adds to the pair: 1 (0.3 for a bounce), up to the cap of 3 on a clicked pair."""
    w = W_BOUNCE if dwell_ms is not None and dwell_ms < BOUNCE_MS else W_CLICK
    if prev is None:
        return w
    have = prev[0] if prev[2] & Kind.CLICK else 0.0
    return max(0.0, min(w, W_CLICK_CAP - have))


def comment_gain(prev: Engaged | None, sentiment: float) -> float:
    """What a comment of (signed) ``sentiment`` adds: its weight, and, when negative, at most what
    leaves the pair at that weight (said in words, it overrides the implicit click)."""
    cw = comment_weight(sentiment)
    if sentiment < 0 and prev is not None:
        cw = min(cw, cw - prev[0])
    return cw


def liked(prev: Engaged | None) -> bool:
    return prev is not None and bool(prev[2] & Kind.LIKE)


def add(prev: Engaged | None, gain: float, ts: float, kind: Kind) -> Engaged:
    """The pair after an engagement of ``kind`` that adds ``gain`` at ``ts``."""
    if prev is None:
        return (gain, ts, int(kind))
    return (prev[0] + gain, max(prev[1], ts), int(prev[2] | kind))


def unlike(prev: Engaged) -> Engaged:
    """The pair after an unlike of a liked pair: the like's weight and bit taken back, time kept."""
    return (prev[0] - W_LIKE, prev[1], int(prev[2] & ~Kind.LIKE))


def is_positive(weight: float) -> bool:
    """A pair is a positive label / graph edge iff its net weight is above zero."""
    return weight > 0


K = TypeVar("K", bound=Hashable)
"""A user or item key: an id string, or a row."""


@dataclass
class PairLedger(Generic[K]):
    """Net engagement per (user, item), fed events in order with the rules above: the activity
    table's arithmetic and order (newest engagement last) without its size bounds. What the
    trainers take their positive labels and interest weights from."""

    sentiment_weighting: bool = True
    pairs: dict[tuple[K, K], Engaged] = field(default_factory=dict)

    def click(self, user: K, item: K, ts: float, dwell_ms: int | None = None) -> Engaged:
        prev = self.pairs.get((user, item))
        return self._set(user, item, add(prev, click_gain(prev, dwell_ms), ts, Kind.CLICK))

    def like(self, user: K, item: K, ts: float, undo: bool = False) -> Engaged | None:
        prev = self.pairs.get((user, item))
        if undo:
            if prev is not None and liked(prev):  # in place, as the activity table does: not a new engagement
                self.pairs[(user, item)] = prev = unlike(prev)
            return prev
        if liked(prev):
            return prev
        return self._set(user, item, add(prev, W_LIKE, ts, Kind.LIKE))

    def comment(self, user: K, item: K, ts: float, sentiment: float) -> Engaged:
        """``sentiment`` as scored; the ledger applies the weighting switch."""
        prev = self.pairs.get((user, item))
        s = signed(sentiment, self.sentiment_weighting)
        return self._set(user, item, add(prev, comment_gain(prev, s), ts, Kind.COMMENT))

    def weight(self, user: K, item: K) -> float:
        e = self.pairs.get((user, item))
        return e[0] if e is not None else 0.0

    def forget(self, user: K, item: K) -> None:
        self.pairs.pop((user, item), None)

    def _set(self, user: K, item: K, e: Engaged) -> Engaged:
        """Store the pair as the most recent engagement (the table's order: newest last)."""
        self.pairs.pop((user, item), None)
        self.pairs[(user, item)] = e
        return e


__all__ = [
    "BOUNCE_MS",
    "COMMENT_BASE",
    "COMMENT_SENTIMENT",
    "COMMENT_TEXT_WEIGHT",
    "MAX_COMMENTS",
    "W_BOUNCE",
    "W_CLICK",
    "W_CLICK_CAP",
    "W_LIKE",
    "Engaged",
    "Kind",
    "PairLedger",
    "add",
    "click_gain",
    "comment_gain",
    "comment_weight",
    "is_positive",
    "liked",
    "signed",
    "unlike",
]

"""How a query in words is ranked: its words decide what matches, the asker's history reorders within.

A user whose history is jazz who asks for "something to cook for dinner tonight" wants cooking,
not jazz: blending the query with the asker's interest vector let the history outvote the words.
This module is the one rule both scorers (zero-shot and a fused snapshot) go through; the engine
supplies the text relevance of each candidate and the personal score it would rank it by anyway.

For one asker and candidates :math:`j` (those the asker may be shown: seen and own items excluded),

.. math::

    r_j = \\cos(\\mathbf{q}, \\mathbf{x}_j), \\qquad r^\\ast = \\max_j r_j, \\qquad
    m_j = \\mathbb{1}[r_j \\ge r^\\ast - \\delta]

    s_j = r_j + \\beta \\, m_j \\, \\hat p_j, \\qquad
    \\hat p_j = \\frac{p_j - \\min_{m} p}{\\max_{m} p - \\min_{m} p}

where :math:`\\mathbf{q}` is the text tower's vector of the query's words, :math:`\\mathbf{x}_j`
the item's, :math:`p_j` the personal score (the zero-shot blend of the asker's interest, social
proof and popularity, or the fused model's logit for the asker), min-max scaled over the matches
(0 when they all score alike), :math:`\\delta` the match band and :math:`\\beta` the history weight
(``Settings.query_match_band``, ``Settings.query_history_weight``).

- Every match outranks every non-match: :math:`s_j \\ge r_j \\ge r^\\ast - \\delta > r_i = s_i`
  for a match :math:`j` and a non-match :math:`i`. History never lifts a non-match.
- Within the matches history reorders: with :math:`\\beta \\ge \\delta` any match can reach the top.
- A vague query ("something new") has flat relevance, so many items fall in the band and the
  answer is mostly the asker's own taste among them.
- Words that match nothing (:math:`r^\\ast < \\tau`, ``Settings.query_match_floor``) carry no
  signal: relevance is dropped and every candidate is a match, :math:`s_j = \\beta \\hat p_j`,
  the asker's own ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class QueryRule:
    """The three constants of the rule (see the module docstring)."""

    band: float = 0.05  # delta: how far below the best relevance an item still matches
    history_weight: float = 0.05  # beta: the most the asker's history adds within the matches
    floor: float = 0.25  # tau: a best relevance below this means the words match nothing here


def query_scores(relevance: Tensor, personal: Tensor, allowed: Tensor, rule: QueryRule) -> tuple[Tensor, Tensor]:
    """Scores (B, C) of the rule and the match mask (B, C) bool.

    ``relevance`` (B, C) is the cosine of each query to each candidate, ``personal`` (B, C) the
    score the asker's own ranking gives it, ``allowed`` (B, C) bool the pairs that may be shown
    (the others get no score here; the caller masks them out). Rows with nothing allowed are all
    unmatched.
    """
    neg = torch.finfo(relevance.dtype).min
    best = relevance.masked_fill(~allowed, neg).amax(dim=1, keepdim=True)  # (B, 1) r*
    has_signal = best >= rule.floor  # (B, 1)
    match = allowed & (~has_signal | (relevance >= best - rule.band))  # (B, C)
    p = personal.float()
    lo = p.masked_fill(~match, torch.inf).amin(dim=1, keepdim=True)  # (B, 1)
    hi = p.masked_fill(~match, -torch.inf).amax(dim=1, keepdim=True)
    span = hi - lo
    ok = torch.isfinite(span) & (span > 0)
    scaled = torch.where(ok, (p - lo) / torch.where(ok, span, 1.0), torch.zeros_like(p)).clamp_(0.0, 1.0)
    score = relevance.float() * has_signal + rule.history_weight * match * scaled
    return score, match


__all__ = ["QueryRule", "query_scores"]

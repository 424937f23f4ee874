r"""Is one model ahead of another on the same test users, or within what the users alone move?

Both models rank for the same users, so the comparison is paired: per user :math:`u` the
difference :math:`d_u = m_A(u) - m_B(u)` of a metric, then its mean and standard error over the
:math:`n` users,

.. math::
    \bar d = \frac{1}{n} \sum_u d_u, \qquad \mathrm{SE} = \frac{s_d}{\sqrt{n}},

with :math:`s_d` the sample standard deviation of the :math:`d_u`. A :math:`\bar d` within about
two SE of 0 is a difference another draw of test users could reverse.
"""

from __future__ import annotations

import math

from socrec_online.eval.metrics import PerUser

PAIRED_KEYS = ("recall@10", "ndcg@10")


def paired_difference(a: PerUser, b: PerUser, keys: tuple[str, ...] = PAIRED_KEYS) -> dict[str, dict[str, float]]:
    """``{metric: {"diff": mean of a - b, "se": its standard error}}`` over the users both ranked
    (the same test users: the same split)."""
    if a.users.shape != b.users.shape or (a.users != b.users).any():
        raise ValueError("paired metrics need the same test users: rank both models on the same split")
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        d = a.metrics[k] - b.metrics[k]
        se = float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else math.nan
        out[k] = {"diff": float(d.mean()), "se": se}
    return out


__all__ = ["PAIRED_KEYS", "paired_difference"]

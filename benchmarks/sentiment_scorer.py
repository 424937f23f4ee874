"""The comment sentiment scorer of ``socrec bench sentiment`` against ``data/sentiment_sample.tsv``:
211 social-media-style comments hand-labelled positive / negative / neutral by the team BEFORE the
scorer was run on them (no labelled set ships with any installed package and nothing downloads
here). A small sanity sample, not a standard benchmark. Three-class accuracy and macro-F1 use
VADER's own convention (compound >= 0.05 positive, <= -0.05 negative, else neutral); the polar
figures score only the positive/negative lines by the sign of the score (0 counts as a miss), which
is what the engine's comment weight depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from socrec_online.engagement import comment_weight

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "sentiment_sample.tsv"
LABELS = ("positive", "negative", "neutral")
NEUTRAL_BAND = 0.05  # VADER's documented thresholds for its compound score


def load_sample(path: str | Path = SAMPLE_PATH) -> list[tuple[str, str]]:
    """(label, text) pairs; lines starting with # are comments."""
    out: list[tuple[str, str]] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in LABELS or not text.strip():
            raise ValueError(f"{path}:{n}: expected 'label<TAB>text' with label in {LABELS}")
        out.append((label, text))
    return out


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def classify(score: float, band: float = NEUTRAL_BAND) -> str:
    return "positive" if score >= band else "negative" if score <= -band else "neutral"


def evaluate_scorer(score: Callable[[str], float], sample: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy, macro-F1 and a confusion matrix (3-class and polar), plus the engine weights it implies."""
    scores = [float(score(t)) for _, t in sample]
    gold = [lab for lab, _ in sample]
    pred = [classify(s) for s in scores]
    per: dict[str, dict[str, float]] = {}
    for c in LABELS:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        p_, r_, f_ = _f1(tp, fp, fn)
        per[c] = {"precision": round(p_, 4), "recall": round(r_, 4), "f1": round(f_, 4), "n": gold.count(c)}
    confusion = {g: {p: sum(a == g and b == p for a, b in zip(gold, pred, strict=True)) for p in LABELS}
                 for g in LABELS}
    polar = [(g, s) for g, s in zip(gold, scores, strict=True) if g != "neutral"]
    polar_pred = ["positive" if s > 0 else "negative" if s < 0 else "neutral" for _, s in polar]
    polar_gold = [g for g, _ in polar]
    pf1 = []
    for c in ("positive", "negative"):
        tp = sum(g == c and p == c for g, p in zip(polar_gold, polar_pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(polar_gold, polar_pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(polar_gold, polar_pred, strict=True))
        pf1.append(_f1(tp, fp, fn)[2])
    weights = {c: [comment_weight(s) for g, s in zip(gold, scores, strict=True) if g == c] for c in LABELS}
    errors = [
        {"label": g, "score": round(s, 4), "text": t}
        for (g, t), s, p in zip(sample, scores, pred, strict=True)
        if g != p
    ]
    return {
        "n": len(sample),
        "labels": {c: gold.count(c) for c in LABELS},
        "accuracy": round(float(np.mean([g == p for g, p in zip(gold, pred, strict=True)])), 4),
        "macro_f1": round(float(np.mean([per[c]["f1"] for c in LABELS])), 4),
        "per_class": per,
        "confusion": confusion,
        "polar": {
            "n": len(polar),
            "accuracy": round(float(np.mean([g == p for g, p in zip(polar_gold, polar_pred, strict=True)])), 4),
            "macro_f1": round(float(np.mean(pf1)), 4),
        },
        "engine_comment_weight": {
            c: {"mean": round(float(np.mean(w)), 4), "share_below_zero": round(float(np.mean(np.array(w) < 0)), 4)}
            for c, w in weights.items()
            if w
        },
        "errors": errors,
    }


def run_sentiment_eval(path: str | Path = SAMPLE_PATH) -> dict[str, Any]:
    from socrec_online.service.engine import vader_sentiment

    res = evaluate_scorer(vader_sentiment(), load_sample(path))
    res["scorer"] = "vaderSentiment 3.3.2 compound (lexicon + rules, no download)"
    res["sample"] = str(Path(path).name)
    res["sample_note"] = "hand-labelled by the team before the scorer was run; not a standard benchmark"
    return res


__all__ = ["LABELS", "NEUTRAL_BAND", "SAMPLE_PATH", "classify", "evaluate_scorer", "load_sample", "run_sentiment_eval"]

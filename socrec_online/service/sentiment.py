"""Comment sentiment for engagement weights (``service/apply.py``)."""

from __future__ import annotations

from collections.abc import Callable


def vader_sentiment(cache_size: int = 50_000) -> Callable[[str], float]:
    """VADER compound score in [-1, 1]: lexicon-based, made for social-media text, no download.

    Cached per text: short reactions ("love it") repeat a lot and VADER is slow next to a lookup.
    """
    from functools import lru_cache

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    @lru_cache(maxsize=cache_size)
    def score(text: str) -> float:
        return float(analyzer.polarity_scores(text)["compound"])

    return score

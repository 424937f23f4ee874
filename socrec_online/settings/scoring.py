"""Scoring section: which items are candidates and how the zero-shot score and a query rank them.

The formulas these weights enter are in ``socrec_online/service/scoring.py`` (the zero-shot
score), ``service/derive.py`` (the interest vector) and ``service/queries.py`` (queries).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

DAY_S = 86400.0


class ScoringSettings(BaseModel):
    """Candidate pool, zero-shot blend weights, interest decay and the query rule."""

    fresh_window_s: float = Field(
        7 * DAY_S, gt=0, description="Items published within this window, in seconds, form the fresh candidate pool."
    )
    item_ttl_s: float = Field(
        30 * DAY_S, gt=0, description="Items older than this, in seconds since publication, are never recommended."
    )
    ann_threshold: int = Field(
        5000,
        ge=1,
        description="Above this many items in the catalogue the ANN index preselects the candidate pool (plus "
        "the fresh pool); at or below it every live item is scored. In items.",
    )
    ann_candidates: int = Field(
        500, ge=10, le=100_000, description="Candidates the ANN index returns per user, in items."
    )
    recent_per_user: int = Field(
        50, ge=1, le=10_000, description="Recent engagements kept per user for the interest vector, in items."
    )
    zs_weight_text: float = Field(
        0.6, ge=0, le=10, description="Zero-shot score: weight of the cosine between the user and item vectors."
    )
    zs_weight_social: float = Field(
        0.3, ge=0, le=10, description="Zero-shot score: weight of social proof (followees who engaged the item)."
    )
    zs_weight_popularity: float = Field(
        0.1, ge=0, le=10, description="Zero-shot score: weight of the item's decayed popularity."
    )
    zs_weight_social_tower: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Zero-shot user vector: weight of the followees' interests (social tower) added to the "
        "user's own interest.",
    )
    query_match_band: float = Field(
        0.05,
        ge=0,
        le=2,
        description="A query matches the items within this cosine distance of its best match (delta), in "
        "cosine units.",
    )
    query_history_weight: float = Field(
        0.05,
        ge=0,
        le=2,
        description="The most the asker's history adds to a match's score within a query's matches (beta), in "
        "cosine units.",
    )
    query_match_floor: float = Field(
        0.25,
        ge=-1,
        le=1,
        description="Below this best cosine a query's words match nothing and the asker's history answers alone "
        "(tau), in cosine units.",
    )
    interest_half_life_s: float = Field(
        7 * DAY_S,
        gt=0,
        description="Half-life of an engagement's or comment's weight in the interest vector, in seconds of "
        "event time before the user's latest event.",
    )
    popularity_half_life_s: float = Field(
        DAY_S, gt=0, description="Half-life of an engagement's weight in an item's popularity, in seconds."
    )
    profile_weight: float = Field(
        1.5,
        ge=0,
        le=100,
        description="Weight of the declared profile text in the interest vector (never decayed), relative to "
        "an engagement of weight 1.",
    )
    sentiment_weighting: bool = Field(
        True,
        description="A comment weighs 0.5 + 1.5 x its VADER sentiment in [-1, 1] ('this is awful' lowers the "
        "item and similar ones); false = sign ignored, every comment counts positive (abs(sentiment)): the ablation.",
    )

"""Request and response bodies of the read API (pydantic): what is validated, and what
docs/api.md and the OpenAPI document (``openapi.py``) describe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ListKind = Literal["items", "users"]
MAX_K = 1000


class Recommended(BaseModel):
    """One entry of a list: an item (or a user, for kind users)."""

    id: str = Field(description="Item id (user id for kind users).")
    score: float = Field(description="Higher is better; comparable within one list.")
    reason: str = Field(description="Why it is recommended, for people.")


class RecommendationList(BaseModel):
    """A ``recommendations`` payload (``socrec schema recommendations``) plus its age and origin."""

    model_config = ConfigDict(extra="ignore")

    user_id: str
    kind: Literal["items", "users", "query"] = Field(description="users = who to follow; query = a text query's answer.")
    items: list[Recommended] = Field(description="Best first.")
    model_version: str = Field(description='"zero-shot" or the snapshot version that scored it.')
    ts: float = Field(description="When it was scored, seconds since the epoch.")
    age_s: float = Field(ge=0, description="Seconds between ts and this answer.")
    source: Literal["published", "computed"] = Field(
        description="published = the list this worker last published to the recommendations topic; "
        "computed = scored for this request (the user's lists are published by another worker, or none yet)."
    )
    source_event_id: str | None = Field(description="event_id of the input that caused it; null when computed.")
    rec_id: str = Field(description="Deterministic id of the list (the same as on the topic for a published one).")
    schema_version: int


class QueryRequest(BaseModel):
    """``POST /v1/queries``: a text query answered now; no event is written, no state changes."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, description="The asker; must be known to the worker's engine.")
    text: str = Field(min_length=1, description="The request in words (at most SOCREC_MAX_TEXT_BYTES bytes).")
    k: int | None = Field(
        None, ge=1, le=MAX_K, description="At most this many items (never more than SOCREC_TOP_K); null = top_k."
    )

    @field_validator("text")
    @classmethod
    def _has_words(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is only whitespace")  # a queries event like it is dead-lettered (empty_text)
        return text


class ApiError(BaseModel):
    """Every non-200 answer."""

    error: Literal["unauthorized", "invalid", "not_found", "not_ready", "busy"]
    detail: str | list[dict[str, object]] = Field(description="A sentence, or pydantic's errors for an invalid body.")

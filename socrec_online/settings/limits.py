"""Limits section: what the decoder dead-letters and how large a user's or item's table state may grow.

Every table value is one changelog record, which must fit the broker's max.message.bytes; the
limits below keep each value bounded, and Settings refuses limits whose worst case cannot fit
(``socrec_online/service/state.py`` value_bound_problem).
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from socrec_online.service.state import value_bound_problem


class LimitsSettings(BaseModel):
    """Input limits of the decoder (socrec_online/service/decode.py) and bounds of the table state."""

    max_text_bytes: int = Field(
        8192, ge=64, le=1_000_000, description="Longer texts are dead-lettered, in UTF-8 bytes."
    )
    max_payload_bytes: int = Field(
        65536, ge=256, le=10_000_000, description="Larger record values are dead-lettered, in bytes."
    )
    dead_letter_payload_bytes: int = Field(
        2048,
        ge=0,
        le=1_000_000,
        description="Leading bytes of the offending record copied into its dead letter, in bytes (0 = none).",
    )
    max_id_chars: int = Field(
        256, ge=1, le=4096, description="Longer ids (and tags) are dead-lettered, in characters."
    )
    max_tags: int = Field(64, ge=0, le=10_000, description="Items with more tags are dead-lettered, in tags.")
    max_timestamp_s: float = Field(
        4_102_444_800.0,
        gt=0,
        description="Later event times are dead-lettered (e.g. milliseconds sent as seconds), in seconds since "
        "the Unix epoch; the default is 2100-01-01.",
    )
    max_dwell_ms: int = Field(
        86_400_000,
        ge=1,
        le=2**53,
        description="Longest dwell time a click may carry, in milliseconds (default one day); longer ones are "
        "dead-lettered (out_of_range).",
    )
    dedup_ids_per_key: int = Field(
        64,
        ge=1,
        le=1_000_000,
        description="Applied event ids remembered per table key, so a replayed event is applied once; in ids.",
    )
    max_following: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="Users one user may follow; a follow past it is dead-lettered (state_too_large) and changes "
        "nothing, so a table value stays bounded (its changelog record must fit the broker's limit). In users.",
    )
    seen_per_user: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="Engaged items remembered per user, never recommended to that user again; in items.",
    )
    max_table_value_bytes: int = Field(
        900_000,
        ge=65_536,
        le=100_000_000,
        description="Largest encoded table value, in bytes: its changelog record must fit the broker's "
        "max.message.bytes (1 MiB by default). A follow past it is dead-lettered (state_too_large); a user's "
        "activity past it forgets its oldest seen items, then comments, then engagements.",
    )

    @model_validator(mode="after")
    def _values_fit_their_bound(self) -> Self:
        problem = value_bound_problem(
            self.max_table_value_bytes, self.max_text_bytes, self.max_id_chars, self.dedup_ids_per_key, self.max_tags
        )
        if problem is not None:
            raise ValueError(problem)
        return self

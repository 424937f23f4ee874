"""Retention section: how long inactive users and old items stay in the engine and its tables.

Without it every user, item and follow target ever seen stays in memory three times per worker
(engine, tables, the other workers' mirror). The sweep that applies these settings runs on the
event-time clock (``socrec_online/service/retention.py``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

DAY_S = 86400.0


class RetentionSettings(BaseModel):
    """Eviction of inactive users and old items (socrec_online/service/retention.py)."""

    user_ttl_s: float = Field(
        90 * DAY_S,
        ge=0,
        le=100 * 365 * DAY_S,
        description="A user whose latest event (any activity, follow or unfollow) is older than this, in "
        "event-time seconds, is evicted: their activity and follows values are deleted from the engine and the "
        "tables, and a later event starts them afresh. A follow target that never acted goes once no live user "
        "follows them. 0 = never.",
    )
    item_retention_s: float = Field(
        30 * DAY_S,
        ge=0,
        le=100 * 365 * DAY_S,
        description="An item published more than item_ttl_s plus this margin ago, in event-time seconds, is "
        "evicted (it is never recommended already; the margin keeps its text vector in its engagers' "
        "interests meanwhile); engagements naming it stay in the users' values. 0 = never.",
    )
    retention_sweep_s: float = Field(
        3600.0,
        gt=0,
        le=30 * DAY_S,
        description="Event-time seconds between two retention sweeps (at multiples of this on the event-time "
        "clock, so every replay sweeps at the same points).",
    )

"""Serving section: what a worker publishes per event and how it batches, isolates and retries."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator


class ServingSettings(BaseModel):
    """The worker's micro-batches (streams/), its engine process, and what each batch publishes."""

    top_k: int = Field(10, ge=1, le=200, description="Items per recommendation message.")
    who_to_follow_k: int = Field(5, ge=0, le=200, description="Users per who-to-follow message (0 = none).")
    fanout_max_users: int = Field(
        64,
        ge=0,
        le=100_000,
        description="Followers of engaging users republished per micro-batch (their social proof changed), in "
        "users (0 = none).",
    )
    batch_max_events: int = Field(
        256, ge=1, le=100_000, description="Largest micro-batch, in events (Faust stream.take's n)."
    )
    batch_max_seconds: float = Field(
        0.02,
        gt=0,
        le=10,
        description="Longest a micro-batch waits to fill, in seconds (Faust stream.take's within).",
    )
    batch_catchup_backlog: int = Field(
        2048,
        ge=0,
        le=10_000_000,
        description="When at least this many input records still wait in Kafka (all input partitions read so far) "
        "after a micro-batch, the next ones are merged into it (up to batch_catchup_max_events / _seconds): each "
        "touched user is scored once per batch, so a backlog drains with less CPU per event. In records; must "
        "exceed batch_catchup_max_events, so what arrives during one merged batch at a live rate never starts "
        "the next merge. 0 = never merge.",
    )
    batch_catchup_max_events: int = Field(
        1024,
        ge=1,
        le=100_000,
        description="Largest merged batch while catching up, in events (see batch_catchup_backlog).",
    )
    batch_catchup_max_seconds: float = Field(
        0.25, gt=0, le=60, description="Longest a batch is held for merging while catching up, in seconds."
    )
    engine_process: bool = Field(
        True,
        description="Run the worker's engine in a child process (its own interpreter lock, so learning and "
        "scoring never stall the Kafka client); false = a thread inside the worker process.",
    )
    shared_state: bool = Field(
        True,
        description="Every worker also reads the other workers' changelogs (all partitions) and applies their "
        "social graph, catalogue and interactions, so scoring sees the whole graph with any number of workers; "
        "false saves that read and its memory when exactly one worker runs.",
    )
    breaker_failures: int = Field(
        3,
        ge=1,
        le=100,
        description="Consecutive failures of the engine on one micro-batch (the same input offsets, retried in "
        "the worker after rebuilding the engine from its tables) before the breaker applies the batch's events one "
        "by one and dead-letters each that fails alone (processing_failed); if the engine fails even on an empty "
        "batch, or on every event, the fault is infrastructure and the worker still crashes. Unit: consecutive "
        "failures.",
    )
    unknown_item_grace_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="A click/like/comment on an item not yet seen waits this long, in seconds, for the item's "
        "event (another partition may deliver it later) before it is dead-lettered as unknown_item; 0 = at once. "
        "The wait holds the offset commit, so nothing is lost on a crash.",
    )
    output_ack_timeout_s: float = Field(
        120.0,
        ge=1,
        le=3600,
        description="A batch's recommendations, dead letters and changelog records must be acknowledged by the "
        "broker within this many seconds (Kafka's own delivery.timeout.ms is 120 s), or the worker stops with an "
        "error: a worker stuck on a write would keep its partitions and process nothing; its batch is written "
        "again after a restart, from the uncommitted offsets.",
    )
    unknown_item_max_wait_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Past its grace, a click/like/comment on an unknown item keeps waiting while its item may "
        "still arrive, up to this long after it arrived, in seconds; then it is dead-lettered as unknown_item. "
        "May still arrive: the items partition that would carry it is this worker's and not yet read to its end "
        "(a backlog after a restart), or it is another worker's and that worker has not committed it up to where "
        "it ended when the click was held, or this worker's shared-state mirror has not read and applied the "
        "items changelog that far (scale-out under load).",
    )

    @model_validator(mode="after")
    def _catchup_cannot_feed_itself(self) -> Self:
        # A merged batch of max_events takes longer than the usual windows; what arrives meanwhile at a
        # live rate must not count as a new backlog, or every batch is merged (streams/agents.py CatchUp).
        if 0 < self.batch_catchup_backlog <= self.batch_catchup_max_events:
            raise ValueError(
                f"batch_catchup_backlog ({self.batch_catchup_backlog}) must exceed batch_catchup_max_events "
                f"({self.batch_catchup_max_events}), or be 0 (off): merging would sustain itself at a live rate"
            )
        return self

"""Trainer section: when the online learner fine-tunes, on what, how, and when it publishes.

Read by the trainer process (``streams/trainer.py``) through ``socrec_online/online/learner.py``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrainerSettings(BaseModel):
    """Triggers, replay buffer, fine-tune optimisation, the publication gate and snapshot retention."""

    trainer_app_id: str = Field(
        "socrec-trainer",
        description="Consumer group of the trainer (its own, so it never takes partitions from the workers).",
    )
    trainer_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Prometheus port of the trainer; unset = metrics_port (its own container), set it when a "
        "worker runs on the same host (0 = a free one).",
    )
    trainer_nice: int = Field(
        19,
        ge=0,
        le=19,
        description="OS niceness of the trainer process, so fine-tuning yields CPU to serving; 19 also sets "
        "Linux SCHED_IDLE (the trainer runs only on CPU time serving leaves idle); 0 = normal priority.",
    )
    finetune_every_events: int = Field(5000, ge=1, description="Fine-tune after this many new events.")
    finetune_every_s: float = Field(
        600.0,
        gt=0,
        description="Fine-tune after this many seconds since the last one (with at least finetune_min_events new "
        "events).",
    )
    finetune_min_events: int = Field(
        200, ge=1, description="New events needed before a time- or drift-triggered fine-tune, in events."
    )
    finetune_min_pairs: int = Field(
        100, ge=1, description="Training interactions in the buffer needed before any fine-tune, in interactions."
    )
    drift_delta: float = Field(
        0.002,
        gt=0,
        lt=1,
        description="ADWIN confidence delta on the prequential hit signal, a probability: smaller = fewer drift "
        "alarms (each alarm triggers a fine-tune).",
    )
    buffer_recent_size: int = Field(
        20_000, ge=10, description="Most recent interactions kept in the replay buffer, in interactions."
    )
    buffer_reservoir_size: int = Field(
        20_000,
        ge=0,
        description="Reservoir sample of older interactions, in interactions (0 = no memory of the past: forgets).",
    )
    holdout_fraction: float = Field(
        0.1,
        gt=0,
        lt=0.9,
        description="Newest share of the buffer held out (never trained on) for the gate, as a fraction.",
    )
    gate_tolerance: float = Field(
        0.005,
        ge=0,
        le=1,
        description="Publish a fine-tuned model only if its recall@10 on the held-out slice >= the current "
        "model's - this tolerance (recall units, 0 to 1).",
    )
    lora_r: int = Field(
        0,
        ge=0,
        le=256,
        description="LoRA rank on the text tower during fine-tuning (0 = text tower frozen; the fusion head's text "
        "projections still adapt). A rank > 0 suits a GPU: on CPU it makes each fine-tune much slower, and workers "
        "re-encode every item at each swap of a LoRA snapshot.",
    )
    finetune_steps: int = Field(40, ge=1, le=100_000, description="Optimizer steps per fine-tune.")
    finetune_batch_pairs: int = Field(512, ge=1, description="Positive pairs per optimizer step.")
    finetune_grad_accum: int = Field(
        2, ge=1, le=1024, description="Micro-batches per optimizer step (gradient accumulation bounds memory)."
    )
    finetune_negatives: int = Field(32, ge=1, le=4096, description="Sampled negatives per positive pair.")
    finetune_lr: float = Field(3e-3, gt=0, le=1, description="AdamW learning rate of the fine-tune.")
    finetune_max_seconds: float = Field(
        300.0, gt=0, description="Wall-clock bound of one fine-tune's training loop, in seconds."
    )
    finetune_duty: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of a fine-tune's training time spent computing, a fraction: after each optimizer step "
        "the trainer pauses (1/duty - 1) times that step's time, so it overlaps serving's micro-batches less on a "
        "shared box (1 = no pause; 0.5 = a fine-tune takes about twice as long). finetune_max_seconds counts the "
        "pauses.",
    )
    snapshot_keep: int = Field(
        10, ge=1, description="Snapshots kept on disk (CURRENT and its parent are never pruned)."
    )

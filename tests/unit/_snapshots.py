"""A small fused snapshot trained and published the way the trainer does (tests of hot swaps)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from socrec_online.events import Event
from socrec_online.online import BufferConfig, FinetuneConfig, OnlineConfig, OnlineLearner


def publish_snapshot(snapshot_dir: Path, events: Sequence[Event], text_dim: int, steps: int = 10) -> tuple[str, str]:
    """Fine-tune on ``events`` and publish (CURRENT moves to it); returns (path, version)."""
    cfg = OnlineConfig(
        buffer=BufferConfig(recent_size=1000, reservoir_size=0),
        finetune=FinetuneConfig(steps=steps, batch_pairs=128, amp="off"),
        min_train_pairs=20,
        gate_tolerance=1.0,
        dim=16,
    )
    learner = OnlineLearner(cfg, snapshot_dir, text_dim=text_dim)
    learner.learn_many(events)
    out = learner.finetune("events")
    assert out.outcome == "published" and out.path
    assert out.version is not None
    return out.path, out.version

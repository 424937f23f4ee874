"""The worker side of hot swap, without Kafka: ``Engine.load_snapshot`` serves a new version or refuses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from socrec_online import metrics
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.online import BufferConfig, FinetuneConfig, OnlineConfig, OnlineLearner
from socrec_online.settings import Settings
from socrec_online.snapshot import SnapshotError


def _bad_copy(path: Path, name: str, how: str) -> Path:
    bad = path.parent / name
    shutil.copytree(path, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["version"] = name
    (bad / "manifest.json").write_text(json.dumps(m))
    w = bad / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 3] if how == "truncate" else data[:-1] + bytes([data[-1] ^ 1]))
    return bad


def test_engine_swaps_to_a_published_snapshot_and_refuses_corrupt_ones(
    tmp_path: Path, tiny_text_model_path: Path
) -> None:
    from socrec_online.service.engine import Engine

    events = list(generate(SyntheticConfig(n_users=60, n_items=80, interactions_per_user=10, seed=4)).events())
    settings = Settings(text_model_path=tiny_text_model_path, snapshot_dir=tmp_path / "snaps", device="cpu")
    engine = Engine.from_settings(settings)
    engine.restore({})
    engine.learn_many(events)
    cfg = OnlineConfig(
        buffer=BufferConfig(recent_size=1000, reservoir_size=0),
        finetune=FinetuneConfig(steps=10, batch_pairs=128, amp="off"),
        min_train_pairs=20,
        gate_tolerance=1.0,
        dim=16,
    )
    learner = OnlineLearner(cfg, settings.snapshot_dir, text_dim=engine.dim)
    learner.learn_many(events)
    out = learner.finetune("events")
    assert out.outcome == "published" and out.path
    user = events[-1].user_id  # type: ignore[union-attr]
    assert engine.recommend_many([user])[0]["model_version"] == "zero-shot"

    assert engine.load_snapshot(out.path) == out.version
    rec = engine.recommend_many([user])[0]
    assert rec["model_version"] == out.version and rec["items"]

    for name, how, reason in (("v0901-20990101T000000", "flip", "checksum"),
                              ("v0902-20990101T000000", "truncate", "truncated")):
        before = metrics.sample("socrec_snapshot_rejected_total", {"reason": reason}) or 0.0
        with pytest.raises(SnapshotError):
            engine.load_snapshot(str(_bad_copy(Path(out.path), name, how)))
        assert metrics.sample("socrec_snapshot_rejected_total", {"reason": reason}) == before + 1
        assert engine.recommend_many([user])[0]["model_version"] == out.version  # the old one keeps serving

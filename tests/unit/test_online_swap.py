"""The worker side of hot swap, without Kafka: ``Engine.load_snapshot`` serves a new version or refuses it."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _snapshots import publish_snapshot

from socrec_online import metrics
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import Follow, ItemPublished
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
    engine, events, path, version = _published(tmp_path, tiny_text_model_path, 1250, {})
    user = events[-1].user_id
    assert engine.recommend_many([user])[0]["model_version"] == "zero-shot"

    assert engine.load_snapshot(path) == version
    rec = engine.recommend_many([user])[0]
    assert rec["model_version"] == version and rec["items"]

    for name, how, reason in (("v0901-20990101T000000", "flip", "checksum"),
                              ("v0902-20990101T000000", "truncate", "truncated")):
        before = metrics.sample("socrec_snapshot_rejected_total", {"reason": reason}) or 0.0
        with pytest.raises(SnapshotError):
            engine.load_snapshot(str(_bad_copy(Path(path), name, how)))
        assert metrics.sample("socrec_snapshot_rejected_total", {"reason": reason}) == before + 1
        assert engine.recommend_many([user])[0]["model_version"] == version  # the old one keeps serving


def _learn(engine: Any, events: list[Any], tables: dict[str, dict[str, Any]]) -> None:
    """Apply events as a worker does, keeping its tables (the changelog a restore reads)."""
    for key, values in engine.learn_many(events).table_updates.items():
        tables.setdefault(key, {}).update(values)


def _published(
    tmp_path: Path, tiny_text_model_path: Path, n_events: int, tables: dict[str, dict[str, Any]]
) -> tuple[Any, list[Any], str, str]:
    from socrec_online.service.engine import Engine

    events = list(generate(SyntheticConfig(n_users=60, n_items=80, interactions_per_user=10, seed=4)).events())
    settings = Settings(text_model_path=tiny_text_model_path, snapshot_dir=tmp_path / "snaps", device="cpu")
    engine = Engine.from_settings(settings)
    engine.restore({})
    _learn(engine, events[:n_events], tables)
    path, version = publish_snapshot(settings.snapshot_dir, events[:n_events], engine.dim)
    return engine, events, path, version


def _scores(scorer: Any, engine: Any) -> torch.Tensor:
    st = engine.store
    rows = np.arange(len(st.users), dtype=np.int64)
    cand = np.arange(len(st.items), dtype=np.int64)
    return scorer.score_users_items(st, rows, cand, engine.clock)  # type: ignore[no-any-return]


@pytest.mark.parametrize("restore_meanwhile", [False, True])
def test_hot_swap_builds_off_the_engine_and_catches_up_with_the_batches_applied_meanwhile(
    tmp_path: Path, tiny_text_model_path: Path, monkeypatch: pytest.MonkeyPatch, restore_meanwhile: bool
) -> None:
    """The engine serves (learns and recommends on the old model) while the new scorer builds; once it
    serves, it scores exactly as one attached from scratch to the final graph."""
    from socrec_online.service.fused import FusedScorer

    tables: dict[str, dict[str, Any]] = {}
    engine, events, path, version = _published(tmp_path, tiny_text_model_path, 950, tables)
    rest = events[950:]
    gate = threading.Event()
    build = FusedScorer.build

    def held_build(self: FusedScorer, g: Any) -> None:
        assert gate.wait(60)
        build(self, g)

    monkeypatch.setattr(FusedScorer, "build", held_build)
    assert engine.stage_snapshot(path) == version
    assert engine.swap_outcome(version) is None  # still building
    new_item = ItemPublished(event_id="e-new", item_id="fresh-item", ts=rest[0].ts, text="a brand new jazz record")
    follow = Follow(event_id="e-f", user_id=rest[0].user_id, target_id=rest[1].user_id, ts=rest[0].ts)
    _learn(engine, [*rest[:150], new_item, follow], tables)  # applied while the build waits
    if restore_meanwhile:  # a rebalance: the state is rebuilt from the tables under the build
        engine.restore(tables)
        _learn(engine, rest[150:250], tables)
    assert engine.recommend_many([rest[0].user_id])[0]["model_version"] == "zero-shot"
    gate.set()
    deadline = time.monotonic() + 60
    while (got := engine.swap_outcome(version)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert got == version
    assert engine.recommend_many([rest[0].user_id])[0]["model_version"] == version
    monkeypatch.setattr(FusedScorer, "build", build)
    fresh = FusedScorer.load(path, encoder=engine.encoder)
    fresh.attach(engine.store)
    assert torch.allclose(_scores(engine.slot.model, engine), _scores(fresh, engine), atol=1e-5)


def test_a_staged_snapshot_that_fails_to_build_is_refused_and_the_old_model_keeps_serving(
    tmp_path: Path, tiny_text_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from socrec_online.service.fused import FusedScorer

    engine, events, path, version = _published(tmp_path, tiny_text_model_path, 950, {})
    rest = events[950:]

    def broken(self: FusedScorer, g: Any) -> None:
        raise ValueError("snapshot expects 99-d text vectors")

    monkeypatch.setattr(FusedScorer, "build", broken)
    before = metrics.sample("socrec_model_swaps_total", {"outcome": "refused"}) or 0.0
    engine.stage_snapshot(path)
    deadline = time.monotonic() + 60
    with pytest.raises(SnapshotError):
        while engine.swap_outcome(version) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert metrics.sample("socrec_model_swaps_total", {"outcome": "refused"}) == before + 1
    engine.learn_many(rest[:50])
    assert engine.recommend_many([rest[0].user_id])[0]["model_version"] == "zero-shot"

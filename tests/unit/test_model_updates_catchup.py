"""At start, the model-updates follower serves CURRENT only if it moved since the engine started:
the snapshot an in-process engine loaded at start (attached on its first call) is not built twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _snapshots import publish_snapshot

from socrec_online import metrics
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings
from socrec_online.snapshot import current
from streams.model_updates import ModelUpdates


class EnginePipeline:
    """The pipeline's seam the follower uses: its engine, and engine calls between batches (counted)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[str] = []

    async def between_batches(self, fn: Callable[..., Any], *args: Any, before_restore: bool = False) -> Any:
        self.calls.append(fn.__name__)
        return fn(*args)


def test_snapshot_loaded_at_start_is_not_staged_again(tmp_path: Path, tiny_text_model_path: Path) -> None:
    settings = Settings(text_model_path=tiny_text_model_path, snapshot_dir=tmp_path / "snaps", device="cpu")
    events = list(generate(SyntheticConfig(n_users=40, n_items=60, interactions_per_user=10, seed=4)).events())
    _, version = publish_snapshot(settings.snapshot_dir, events[:800], Engine.from_settings(settings).dim, steps=5)
    assert current(settings.snapshot_dir) == version

    engine = Engine.from_settings(settings)  # a worker starting now: CURRENT is loaded, not yet attached
    assert engine.model_version == "zero-shot" and engine.next_model_version == version
    pipeline = EnginePipeline(engine)
    follower = ModelUpdates(settings, pipeline)  # type: ignore[arg-type]
    swaps = metrics.sample("socrec_model_swaps_total", {"outcome": "ok"}) or 0.0
    asyncio.run(follower.catch_up())
    assert pipeline.calls == [] and follower.applied == []  # nothing staged: it serves CURRENT already
    engine.restore({})
    engine.step([])  # the first batch attaches the model loaded at start, once
    assert engine.model_version == version
    assert metrics.sample("socrec_model_swaps_total", {"outcome": "ok"}) == swaps + 1

"""The worker writes the engine's evictions to its tables as deletions (tombstones), owned keys only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from socrec_online.events import Click, ItemPublished
from socrec_online.partitioning import owner_partition
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings
from streams.output import OutputProducer
from streams.pipeline import Pipeline
from streams.tables import apply_updates

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path)))


def test_only_deletions_of_owned_keys_are_written(encoder: Any) -> None:
    s = Settings(device="cpu", user_ttl_s=1000.0, retention_sweep_s=10.0, partitions=4)
    eng = Engine(s, encoder)
    users = [f"u{i}" for i in range(12)]
    mine = {u for u in users if owner_partition(u, 4) in {0, 1}}
    assert mine and set(users) - mine
    p = Pipeline(s, None, {}, eng, OutputProducer(s))  # type: ignore[arg-type]
    p.owned_partitions = lambda: {0, 1}
    # the worker's table holds its own users and stale copies of others' (a revoked partition)
    table: dict[str, dict[str, Any]] = {"activity": {}, "social": {}, "items": {}}
    out = eng.step([ItemPublished("p", "i1", T0, "jazz quartet"), *(Click(f"c{u}", u, "i1", T0 + 1) for u in users)])
    apply_updates(table, p.writable(out["table_updates"]))
    assert set(table["activity"]) == set(users)
    later = eng.step([ItemPublished("p2", "i2", T0 + 5000, "gravel climb"), Click("x", "new", "i2", T0 + 5001)])
    assert {k for k, v in later["table_updates"]["activity"].items() if v is None} == set(users)
    apply_updates(table, p.writable(later["table_updates"]))
    assert set(table["activity"]) == (set(users) - mine) | {"new"}  # others' keys: their owners delete them
    assert "i2" in table["items"] and "new" in table["activity"]

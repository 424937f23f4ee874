"""Must 6 at the worker level: tampered snapshots are refused by a running worker and at start.

The snapshot module's own refusals are unit-tested (tests/unit/test_snapshot.py); here a live
worker is told about truncated, bit-flipped, wrong-checksum and pickle-bearing versions (through
``model-updates``, as the trainer would) and must keep serving the last good version, count
every refusal in ``socrec_snapshot_rejected_total``, and never run the pickle (its canary file
never appears). Then a restart with CURRENT pointing at a pickle-bearing version: the worker
starts anyway, counts the refusal and serves a model that is not the tampered one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness.rig import Rig
from socrec_online.events import Click, ItemPublished, Profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _Canary:
    """Unpickling this creates the canary file: proof that something ran a pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _forge(root: Path, good: str, mutate: Callable[[Path, dict[str, Any]], None]) -> str:
    """A copy of ``good`` under the next version name, then ``mutate(dir, manifest)``."""
    from socrec_online import snapshot

    version = snapshot.new_version(root)
    d = root / version
    shutil.copytree(root / good, d)
    m = json.loads((d / "manifest.json").read_text())
    m["version"] = version
    mutate(d, m)
    (d / "manifest.json").write_text(json.dumps(m))
    return version


def _relist(d: Path, m: dict[str, Any], name: str) -> None:
    """Make the manifest agree with the file (so only the format check stands in the way)."""
    data = (d / name).read_bytes()
    m["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _flip_bit(path: Path, at: int) -> None:
    b = bytearray(path.read_bytes())
    b[at] ^= 0x40
    path.write_bytes(bytes(b))


def _rejected(rig: Rig) -> float:
    return sum(v for k, v in rig.metrics().items() if k.startswith("socrec_snapshot_rejected_total"))


def _served_version(rig: Rig, tag: str, items: list[str], timeout: float = 60.0) -> str:
    """Send a click and return the model_version of the recommendation it causes."""
    ev = Click(f"snap-{tag}", "snap-u1", items[0], time.time())
    asyncio.run(rig.produce([ev]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = asyncio.run(_recs(rig))
        got = [r for r in recs if r.get("source_event_id") == ev.event_id]
        if got:
            return str(got[-1]["model_version"])
        time.sleep(0.5)
    pytest.fail(f"no recommendation for {ev.event_id}; log:\n{rig.log_tail()}")


async def _recs(rig: Rig) -> list[dict[str, Any]]:
    from benchmarks.harness.rig import read_topics

    return [r.json() for r in await read_topics(rig.settings, [rig.topic("recommendations")]) if r.value]


def test_running_worker_refuses_tampered_snapshots_and_keeps_the_good_one(
    rig_factory: Callable[..., Rig], tiny_text_model_path: Path, tmp_path: Path
) -> None:
    import torch

    from socrec_online import snapshot
    from socrec_online.models.recommender import FusedRecommender, RecommenderConfig, save_recommender
    from socrec_online.models.text import TextEncoder, TextEncoderConfig
    from streams.model_updates import announce

    canary = tmp_path / "PICKLE_RAN"
    rig = rig_factory("snap.")
    root = Path(rig.env["SOCREC_SNAPSHOT_DIR"])
    dim = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path))).dim
    torch.manual_seed(0)
    model = FusedRecommender(RecommenderConfig(n_users=2, n_items=3, text_dim=dim, dim=16))
    items = ["snap-i0", "snap-i1", "snap-i2"]
    good = save_recommender(root, model, ["snap-u1", "snap-u2"], items, {"recall@10": 0.1}).version
    snapshot.promote(root, good)

    asyncio.run(rig.ensure_topics())
    rig.start()
    t = time.time()
    asyncio.run(rig.produce(
        [ItemPublished(f"snap-p{k}", i, t, f"story number {k}") for k, i in enumerate(items)]
        + [Profile("snap-prof", "snap-u1", t, "stories")]
    ))  # fmt: skip
    assert _served_version(rig, "before", items) == good
    base = _rejected(rig)

    evil = pickle.dumps(_Canary(canary))
    tampered = {
        "truncated": lambda d, m: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]),
        "bit_flipped": lambda d, m: _flip_bit(d / "model.safetensors", 200),
        "wrong_checksum": lambda d, m: m["files"]["model.safetensors"].update(sha256="0" * 64),
        "pickle_weights": lambda d, m: ((d / "model.safetensors").write_bytes(evil),
                                        _relist(d, m, "model.safetensors")),
        "pickle_extra": lambda d, m: ((d / "extra.pkl").write_bytes(evil), _relist(d, m, "extra.pkl")),
    }  # fmt: skip
    versions = {name: _forge(root, good, mutate) for name, mutate in tampered.items()}
    for version in versions.values():
        asyncio.run(announce(rig.settings, version, str(root / version)))
    # (the engine process reports its counters with its next answer: a batch after the refusals)
    assert _served_version(rig, "after", items) == good  # serving continues on the last good version
    deadline = time.monotonic() + 60
    while _rejected(rig) < base + len(versions) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _rejected(rig) == base + len(versions), rig.log_tail(8000)
    assert not canary.exists()
    assert rig.worker is not None and rig.worker.alive()

    # At start: CURRENT names the pickle-bearing version (written by hand: promote() refuses it).
    (root / "CURRENT").write_text(versions["pickle_weights"] + "\n")
    rig.stop()
    rig.start()
    served = _served_version(rig, "restart", items)
    assert served != versions["pickle_weights"] and served in (good, "zero-shot")
    deadline = time.monotonic() + 30
    while _rejected(rig) < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _rejected(rig) >= 1
    assert not canary.exists()

"""Which model ``socrec bench throughput`` serves: the zero-shot scorer, or a fused snapshot.

``fused`` trains one on the synthetic dataset the bench streams (RecBole split, seed 0, the MiniLM
text tower the worker serves with), so the worker loads it at start from its snapshot directory
as it would a trainer's; ``--snapshot PATH`` serves a given one instead (a snapshot directory, or
a directory of versions). The JSON names the model version the recommendations carried.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

MODELS = ("zero-shot", "fused")


def prepare_snapshots(model: str, snapshot: Path | None, root: Path) -> dict[str, Any]:
    """Fill ``root`` (every worker's SOCREC_SNAPSHOT_DIR) with what ``model`` serves: nothing for
    zero-shot, a copy of ``snapshot``'s latest version, or a fused model trained here."""
    from socrec_online.snapshot import promote

    root.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        src = snapshot if (snapshot / "manifest.json").exists() else _latest_version(snapshot)
        shutil.copytree(src, root / src.name)
        promote(root, src.name)  # what a worker serves at start
        return {"snapshot": str(src)}
    if model == "zero-shot":
        return {}
    if model != "fused":
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    return _bootstrap_fused(root)


def _latest_version(root: Path) -> Path:
    versions = sorted(p for p in root.iterdir() if (p / "manifest.json").exists()) if root.is_dir() else []
    if not versions:
        raise ValueError(f"--snapshot {root}: neither a snapshot nor a directory of snapshots")
    return versions[-1]


def _bootstrap_fused(root: Path) -> dict[str, Any]:
    from benchmarks.engine_eval import bench_settings, make_encoder, save_encoder_cache
    from benchmarks.queries import QueriesConfig, train_fused
    from socrec_online.data import load_dataset
    from socrec_online.snapshot import promote

    t0 = time.perf_counter()
    ds = load_dataset("synthetic", seed=0)  # the dataset the bench streams
    enc = make_encoder(bench_settings(), "synthetic")
    item_text = enc.encode(ds.item_text).float()
    save_encoder_cache(enc, "synthetic")
    path, training = train_fused(ds, QueriesConfig(seed=0), item_text, root)
    promote(root, path.name)
    return {"snapshot": str(path), "training": training, "bootstrap_s": round(time.perf_counter() - t0, 1)}

"""Snapshots: round trip, every kind of damage refused with its reason, no pickle ever runs, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from socrec_online import snapshot as snap
from socrec_online.snapshot import (
    SnapshotError,
    SnapshotErrorReason,
    current,
    list_snapshots,
    load_snapshot,
    promote,
    read_extra,
    rollback,
    save_snapshot,
)

R = SnapshotErrorReason


def tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "head.w": torch.randn(8, 4, generator=g),
        "gnn.emb": torch.randn(5, 3, generator=g).t(),
        "n": torch.arange(3),
    }


def save(root: Path, seed: int = 0, parent: str | None = None) -> snap.SnapshotInfo:
    return save_snapshot(
        root,
        tensors(seed),
        {"dim": 4},
        {"recall@10": 0.2 + seed, "bad": float("nan")},
        parent=parent,
        data_window={"from_ts": 1.0, "to_ts": 2.0},
    )


def expect(reason: SnapshotErrorReason, path: Path) -> None:
    with pytest.raises(SnapshotError) as ei:
        load_snapshot(path)
    assert ei.value.reason is reason, ei.value


def test_round_trip_and_manifest(tmp_path: Path) -> None:
    info = save(tmp_path)
    assert snap.is_version(info.version) and info.version.startswith("v0001-")
    t, m = load_snapshot(info.path)
    for k, v in tensors().items():
        assert torch.equal(t[k], v)
    assert m["version"] == info.version and m["parent"] is None and m["data_window"]["to_ts"] == 2.0
    assert m["metrics"] == {"recall@10": 0.2, "bad": None}  # NaN cannot be JSON: stored as null
    assert set(m["files"]) == {"model.safetensors"}
    assert sorted(os.listdir(tmp_path)) == [info.version]  # no temp dir left behind
    second = save(tmp_path, seed=1, parent=info.version)
    assert second.version.startswith("v0002-") and second.version > info.version


def test_extra_files_are_verified(tmp_path: Path) -> None:
    info = save_snapshot(tmp_path, tensors(), {}, {}, extra_files={"users.json": b'["u1", "u2"]'})
    assert json.loads(read_extra(info.path, "users.json")) == ["u1", "u2"]
    (info.path / "users.json").write_bytes(b'["u1", "u3"]')
    with pytest.raises(SnapshotError) as ei:
        read_extra(info.path, "users.json")
    assert ei.value.reason is R.CHECKSUM
    with pytest.raises(ValueError):
        save_snapshot(tmp_path, tensors(), {}, {}, extra_files={"state.pkl": b"x"})


def test_truncated_is_refused(tmp_path: Path) -> None:
    p = save(tmp_path).path / "model.safetensors"
    p.write_bytes(p.read_bytes()[:-10])
    expect(R.TRUNCATED, p.parent)


def test_bit_flip_is_refused(tmp_path: Path) -> None:
    p = save(tmp_path).path / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x01
    p.write_bytes(bytes(data))
    expect(R.CHECKSUM, p.parent)


def test_wrong_checksum_in_manifest_is_refused(tmp_path: Path) -> None:
    d = save(tmp_path).path
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["model.safetensors"]["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(m))
    expect(R.CHECKSUM, d)


def test_missing_and_malformed(tmp_path: Path) -> None:
    d = save(tmp_path).path
    (d / "model.safetensors").unlink()
    expect(R.MISSING, d)
    d2 = save(tmp_path, seed=1).path
    (d2 / "manifest.json").write_text("{not json")
    expect(R.MALFORMED, d2)
    expect(R.MISSING, tmp_path / "v0099-20260101T000000")


def _plant_pickle(path: Path, canary: Path) -> bytes:
    class Boom:
        def __reduce__(self):  # what an attacker's pickle does on load
            return (Path.write_text, (canary, "pwned"))

    data = pickle.dumps(Boom())
    path.write_bytes(data)
    return data


def test_extra_pickle_file_is_refused_and_never_runs(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    probe = tmp_path / "probe"
    pickle.loads(_plant_pickle(tmp_path / "probe.pkl", probe))  # the payload is live: unpickling runs it
    assert probe.exists()
    d = save(tmp_path / "snaps").path
    _plant_pickle(d / "optimizer.pt", canary)
    expect(R.UNSAFE, d)
    # even listed in the manifest with a correct sha256, a pickle-capable file type is refused
    m = json.loads((d / "manifest.json").read_text())
    import hashlib

    m["files"]["optimizer.pt"] = {
        "sha256": hashlib.sha256((d / "optimizer.pt").read_bytes()).hexdigest(),
        "size": (d / "optimizer.pt").stat().st_size,
    }
    (d / "manifest.json").write_text(json.dumps(m))
    expect(R.UNSAFE, d)
    with pytest.raises(SnapshotError):
        promote(tmp_path / "snaps", d.name)
    # a pickle in place of the weights file, with a matching checksum: parsed as safetensors, never unpickled
    d2 = save(tmp_path / "snaps", seed=1).path
    data = _plant_pickle(d2 / "model.safetensors", canary)
    m2 = json.loads((d2 / "manifest.json").read_text())
    m2["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (d2 / "manifest.json").write_text(json.dumps(m2))
    expect(R.MALFORMED, d2)
    assert not canary.exists()


def test_crash_before_rename_leaves_no_visible_version(tmp_path: Path) -> None:
    root = tmp_path / "snaps"
    code = (
        "import os, torch\n"
        "from socrec_online import snapshot as s\n"
        "s._publish = lambda tmp, final: os._exit(3)\n"  # the process dies right before the rename
        f"s.save_snapshot({str(root)!r}, {{'w': torch.ones(4)}}, {{}}, {{}})\n"
    )
    rc = subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode
    assert rc == 3
    assert list_snapshots(root) == [] and current(root) is None
    assert [p.name for p in root.iterdir() if snap.is_version(p.name)] == []
    info = save(root)  # the next writer is not disturbed by the debris
    assert [d["version"] for d in list_snapshots(root)] == [info.version]


def test_promote_current_rollback(tmp_path: Path) -> None:
    assert current(tmp_path) is None
    a = save(tmp_path, 0)
    b = save(tmp_path, 1, parent=a.version)
    c = save(tmp_path, 2, parent=b.version)
    promote(tmp_path, c.version)
    assert current(tmp_path) == c.version
    listed = list_snapshots(tmp_path)
    assert [d["version"] for d in listed] == [a.version, b.version, c.version]
    assert [d["current"] for d in listed] == [False, False, True] and all(d["valid"] for d in listed)
    # the parent is damaged: rollback skips it and lands on the last good one before it
    (b.path / "model.safetensors").write_bytes(b"garbage")
    assert rollback(tmp_path) == a.version and current(tmp_path) == a.version
    assert [d["valid"] for d in list_snapshots(tmp_path)] == [True, False, True]
    with pytest.raises(SnapshotError) as ei:
        rollback(tmp_path)  # nothing older than a
    assert ei.value.reason is R.MISSING and current(tmp_path) == a.version
    with pytest.raises(SnapshotError):
        promote(tmp_path, b.version)  # a damaged version is never promoted
    assert current(tmp_path) == a.version


def test_prune_keeps_newest_current_and_its_parent(tmp_path: Path) -> None:
    infos = [save(tmp_path, i) for i in range(5)]
    v = [i.version for i in infos]
    c = save(tmp_path, 9, parent=v[0])  # fine-tuned from the oldest one
    promote(tmp_path, c.version)
    deleted = snap.prune(tmp_path, keep=2)
    left = [d["version"] for d in list_snapshots(tmp_path)]
    assert v[0] in left and c.version in left and v[4] in left  # parent of CURRENT, CURRENT, newest
    assert set(deleted) == {v[1], v[2], v[3]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    assert rollback(tmp_path) == v[0]

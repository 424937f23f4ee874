"""``socrec snapshots``: what an operator runs to see, promote and roll back versions."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from socrec_online.snapshot import current, save_snapshot
from streams.cli import app

runner = CliRunner()


def _two_versions(root: Path) -> tuple[str, str]:
    a = save_snapshot(root, {"w": torch.zeros(2)}, {"kind": "fused"}, {"recall@10": 0.2}).version
    b = save_snapshot(root, {"w": torch.ones(2)}, {"kind": "fused"}, {"recall@10": 0.21}, parent=a).version
    return a, b


def test_list_promote_rollback(tmp_path: Path) -> None:
    a, b = _two_versions(tmp_path)
    out = runner.invoke(app, ["snapshots", "list", "--snapshot-dir", str(tmp_path)])
    assert out.exit_code == 0 and a in out.output and b in out.output
    assert runner.invoke(app, ["snapshots", "promote", b, "--snapshot-dir", str(tmp_path)]).exit_code == 0
    assert current(tmp_path) == b
    res = runner.invoke(app, ["snapshots", "rollback", "--no-announce", "--snapshot-dir", str(tmp_path)])
    assert res.exit_code == 0 and current(tmp_path) == a


def test_a_tampered_version_is_never_promoted(tmp_path: Path) -> None:
    _a, b = _two_versions(tmp_path)
    weights = tmp_path / b / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    res = runner.invoke(app, ["snapshots", "promote", b, "--snapshot-dir", str(tmp_path)])
    assert res.exit_code == 1 and current(tmp_path) is None
    listed = runner.invoke(app, ["snapshots", "list", "--snapshot-dir", str(tmp_path)])
    assert "NO (checksum)" in listed.output


def test_empty_root_says_zero_shot(tmp_path: Path) -> None:
    out = runner.invoke(app, ["snapshots", "list", "--snapshot-dir", str(tmp_path / "none")])
    assert out.exit_code == 0 and "zero-shot" in out.output
    assert runner.invoke(app, ["snapshots", "rollback", "--snapshot-dir", str(tmp_path)]).exit_code == 1

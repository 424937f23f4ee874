"""Versioned model snapshots: safetensors weights + a JSON manifest with a sha256 per file.

Why this shape: workers load snapshots that a separate trainer wrote while they were serving, so
a reader must never see half a snapshot (written in a temp dir, fsynced, then renamed into
place) and must never run code from one (no pickle: safetensors and JSON only; any file the
manifest does not list, or whose type could carry code, is refused). A bad snapshot raises
:class:`SnapshotError` with a machine-readable reason, so the caller counts it and keeps serving.

Layout::

    root/
      CURRENT                      the promoted version (one line), replaced atomically
      v0001-20261129T061000/
        manifest.json              {format, version, parent, created, created_iso, data_window,
                                    metrics, config, files: {name: {sha256, size}}}
        model.safetensors
        <extra files>              optional, .json / .txt / .tsv / .safetensors only
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: listing and verifying snapshots need no torch
    from torch import Tensor

FORMAT = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
CURRENT = "CURRENT"
ALLOWED_SUFFIXES = (".safetensors", ".json", ".txt", ".tsv")  # nothing that can carry a pickle
MAX_MANIFEST_BYTES = 16 << 20
_VERSION_RE = re.compile(r"^v(\d{4,})-(\d{8}T\d{6})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_STALE_TMP_S = 3600.0


class SnapshotErrorReason(str, Enum):
    TRUNCATED = "truncated"
    CHECKSUM = "checksum"
    MISSING = "missing"
    MALFORMED = "malformed"
    UNSAFE = "unsafe"


class SnapshotError(Exception):
    """A snapshot that must not be served; ``reason`` is the metric label."""

    def __init__(self, reason: SnapshotErrorReason, path: Path | str, detail: str) -> None:
        self.reason = reason
        self.path = Path(path)
        self.detail = detail
        super().__init__(f"snapshot {self.path}: {reason.value}: {detail}")


@dataclass(frozen=True)
class SnapshotInfo:
    version: str
    path: Path
    manifest: dict[str, Any]


# ---- helpers ------------------------------------------------------------------------------
def is_version(name: str) -> bool:
    return _VERSION_RE.match(name) is not None


def _seq(name: str) -> int:
    m = _VERSION_RE.match(name)
    return int(m.group(1)) if m else 0


def new_version(root: Path | str, now: float | None = None) -> str:
    """Next ``vNNNN-YYYYmmddTHHMMSS`` under ``root`` (sortable: sequence first, then UTC time)."""
    root = Path(root)
    seqs = [_seq(p.name) for p in root.iterdir()] if root.is_dir() else []
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%S")
    return f"v{max(seqs, default=0) + 1:04d}-{stamp}"


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: a non-finite metric becomes null instead of an invalid manifest."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _publish(tmp: Path, final: Path) -> None:
    """The one step that makes a snapshot visible (a rename is atomic on POSIX)."""
    os.rename(tmp, final)


def _clean_stale_tmp(root: Path) -> None:
    now = time.time()
    for p in root.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _tensor_bytes(tensors: dict[str, Tensor]) -> bytes:
    from safetensors.torch import save

    # own, contiguous CPU copies: safetensors refuses shared storage and non-CPU tensors
    clean = {str(k): v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return save(clean)


# ---- save ---------------------------------------------------------------------------------
def save_snapshot(
    root: Path | str,
    tensors: dict[str, Tensor],
    config: dict[str, Any],
    metrics: dict[str, Any],
    parent: str | None = None,
    data_window: dict[str, Any] | None = None,
    version: str | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> SnapshotInfo:
    """Write ``root/<version>/`` atomically and return it (not promoted: see :func:`promote`)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(root)
    if version is not None and not is_version(version):
        raise ValueError(f"version {version!r} is not of the form v0001-20261129T061000")
    extra = dict(extra_files or {})
    for name in extra:
        if name in (MANIFEST, WEIGHTS) or not _NAME_RE.match(name) or not name.endswith(ALLOWED_SUFFIXES):
            raise ValueError(f"extra file name {name!r} not allowed (suffixes {ALLOWED_SUFFIXES})")
    payload = {WEIGHTS: _tensor_bytes(tensors), **extra}
    json.dumps(_finite(config), allow_nan=False)  # fail before writing anything if not JSON-able

    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        files = {}
        for name, data in payload.items():
            _write_file(tmp / name, data)
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for attempt in range(100):
            v = version or new_version(root)
            created = time.time()
            manifest = {
                "format": FORMAT,
                "version": v,
                "parent": parent,
                "created": created,
                "created_iso": datetime.fromtimestamp(created, UTC).isoformat(),
                "data_window": _finite(data_window or {}),
                "metrics": _finite(metrics),
                "config": _finite(config),
                "files": files,
            }
            _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, allow_nan=False).encode("utf-8"))
            _fsync_dir(tmp)
            final = root / v
            if final.exists():
                if version is not None:
                    raise FileExistsError(f"snapshot {final} already exists")
                time.sleep(0.001)
                continue
            try:
                _publish(tmp, final)
            except OSError:
                if version is not None or not final.exists():
                    raise
                continue  # a concurrent writer took this sequence number: take the next
            _fsync_dir(root)
            return SnapshotInfo(version=v, path=final, manifest=manifest)
        raise RuntimeError("could not allocate a snapshot version after 100 attempts")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---- load / verify ------------------------------------------------------------------------
def _read_manifest(path: Path) -> dict[str, Any]:
    E = SnapshotErrorReason
    if not path.is_dir():
        raise SnapshotError(E.MISSING, path, "no such snapshot directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise SnapshotError(E.MISSING, path, f"{MANIFEST} missing")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise SnapshotError(E.MALFORMED, path, f"{MANIFEST} larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        m = json.loads(mpath.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SnapshotError(E.MALFORMED, path, f"{MANIFEST} is not valid JSON: {e}") from None
    if not isinstance(m, dict):
        raise SnapshotError(E.MALFORMED, path, "manifest is not an object")
    need: dict[str, type | tuple[type, ...]] = {
        "format": int,
        "version": str,
        "created": (int, float),
        "files": dict,
        "metrics": dict,
        "config": dict,
    }
    for key, typ in need.items():
        if not isinstance(m.get(key), typ):
            raise SnapshotError(E.MALFORMED, path, f"manifest field {key!r} missing or of the wrong type")
    if m["format"] != FORMAT:
        raise SnapshotError(E.MALFORMED, path, f"unsupported manifest format {m['format']}")
    if m["version"] != path.name:
        raise SnapshotError(
            E.MALFORMED, path, f"manifest version {m['version']!r} != directory {path.name!r}"
        )
    if m.get("parent") is not None and not isinstance(m["parent"], str):
        raise SnapshotError(E.MALFORMED, path, "manifest parent must be a string or null")
    if WEIGHTS not in m["files"]:
        raise SnapshotError(E.MALFORMED, path, f"manifest does not list {WEIGHTS}")
    for name, meta in m["files"].items():
        if not _NAME_RE.match(name) or name == MANIFEST:
            raise SnapshotError(E.UNSAFE, path, f"manifest lists a bad file name {name!r}")
        if not name.endswith(ALLOWED_SUFFIXES):
            raise SnapshotError(E.UNSAFE, path, f"file type not allowed: {name!r}")
        if (
            not isinstance(meta, dict)
            or not isinstance(meta.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
            or not isinstance(meta.get("size"), int)
            or meta["size"] < 0
        ):
            raise SnapshotError(E.MALFORMED, path, f"bad files entry for {name!r}")
    for entry in path.iterdir():
        if entry.name == MANIFEST:
            continue
        if entry.name not in m["files"]:
            raise SnapshotError(E.UNSAFE, path, f"file not in the manifest: {entry.name!r}")
        if entry.is_symlink() or not entry.is_file():
            raise SnapshotError(E.UNSAFE, path, f"not a regular file: {entry.name!r}")
    return m


def _read_verified(path: Path, name: str, meta: dict[str, Any]) -> bytes:
    """The file's bytes, read once, checked against size and sha256 (what is checked is what is used)."""
    E = SnapshotErrorReason
    f = path / name
    if not f.is_file():
        raise SnapshotError(E.MISSING, path, f"{name} missing")
    data = f.read_bytes()
    if len(data) < meta["size"]:
        raise SnapshotError(E.TRUNCATED, path, f"{name} has {len(data)} bytes, manifest says {meta['size']}")
    if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise SnapshotError(E.CHECKSUM, path, f"{name} does not match its sha256")
    if name.endswith(".json"):
        try:
            json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SnapshotError(E.MALFORMED, path, f"{name} is not valid JSON") from None
    return data


def verify_snapshot(path: Path | str) -> dict[str, Any]:
    """Check everything :func:`load_snapshot` checks; return the manifest."""
    path = Path(path)
    m = _read_manifest(path)
    for name, meta in m["files"].items():
        _read_verified(path, name, meta)
    return m


def load_snapshot(path: Path | str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Verified tensors (CPU) and manifest; raises :class:`SnapshotError`, never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    m = _read_manifest(path)
    blobs = {name: _read_verified(path, name, meta) for name, meta in m["files"].items()}
    try:
        tensors = load(blobs[WEIGHTS])
    # a checksum-valid file that safetensors cannot parse was written wrong (or is a planted pickle)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise SnapshotError(SnapshotErrorReason.MALFORMED, path, f"{WEIGHTS} unreadable: {e}") from None
    return tensors, m


def read_extra(path: Path | str, name: str) -> bytes:
    """A verified extra file of a snapshot (e.g. an id map saved as JSON)."""
    path = Path(path)
    m = _read_manifest(path)
    if name not in m["files"]:
        raise SnapshotError(SnapshotErrorReason.MISSING, path, f"{name} not in the manifest")
    return _read_verified(path, name, m["files"][name])


# ---- listing and the CURRENT pointer ------------------------------------------------------
def list_snapshots(root: Path | str) -> list[dict[str, Any]]:
    """Every version directory under ``root`` with ``path``, ``valid``, ``current`` (and ``error``
    when invalid), oldest first by ``created``."""
    root = Path(root)
    if not root.is_dir():
        return []
    cur = current(root)
    out: list[dict[str, Any]] = []
    for p in root.iterdir():
        if not p.is_dir() or not is_version(p.name):
            continue
        try:
            info = dict(verify_snapshot(p))
            info.update(valid=True)
        except SnapshotError as e:
            info = {
                "version": p.name,
                "parent": None,
                "created": p.stat().st_mtime,
                "metrics": {},
                "valid": False,
                "error": e.reason.value,
                "detail": e.detail,
            }
        info.update(path=str(p), current=p.name == cur)
        out.append(info)
    out.sort(key=lambda d: (float(d.get("created", 0.0)), _seq(d["version"]), d["version"]))
    return out


def current(root: Path | str) -> str | None:
    """The promoted version, or None when nothing was promoted (serve zero-shot)."""
    f = Path(root) / CURRENT
    try:
        v = f.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return v if is_version(v) else None


def _write_current(root: Path, version: str) -> None:
    tmp = root / f".{CURRENT}.{uuid.uuid4().hex}"
    _write_file(tmp, (version + "\n").encode("utf-8"))
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def promote(root: Path | str, version: str) -> None:
    """Make ``version`` current after verifying it (a bad snapshot is never promoted)."""
    root = Path(root)
    if not is_version(version):
        raise SnapshotError(SnapshotErrorReason.MALFORMED, root / version, "not a version name")
    verify_snapshot(root / version)
    _write_current(root, version)


def rollback(root: Path | str) -> str:
    """Move CURRENT back to the last good version before it and return that version.

    Tries the parent chain first (what the current one was fine-tuned from), then older versions
    newest first; each candidate must verify. Raises ``SnapshotError(MISSING)`` when none does.
    """
    root = Path(root)
    cur = current(root)
    if cur is None:
        raise SnapshotError(SnapshotErrorReason.MISSING, root, "no current version to roll back from")
    by_version = {d["version"]: d for d in list_snapshots(root)}
    candidates: list[str] = []
    seen = {cur}
    parent = by_version.get(cur, {}).get("parent")
    while isinstance(parent, str) and parent not in seen:
        seen.add(parent)
        candidates.append(parent)
        parent = by_version.get(parent, {}).get("parent")
    cur_created = float(by_version.get(cur, {}).get("created", math.inf))
    older = [
        d for d in by_version.values() if d["version"] not in seen and float(d["created"]) <= cur_created
    ]
    candidates += [
        d["version"] for d in sorted(older, key=lambda d: (d["created"], _seq(d["version"])), reverse=True)
    ]
    for v in candidates:
        d = by_version.get(v)
        if d is None or not d["valid"]:
            continue
        try:
            promote(root, v)
        except SnapshotError:
            continue
        return v
    raise SnapshotError(SnapshotErrorReason.MISSING, root, f"no good version before {cur}")


def prune(root: Path | str, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest versions; never CURRENT or its parent (the rollback target).

    Returns the deleted versions. Bounded disk for a trainer that publishes every few minutes.
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    root = Path(root)
    listed = list_snapshots(root)
    cur = current(root)
    protect = {cur} if cur else set()
    for d in listed:
        if d["version"] == cur and isinstance(d.get("parent"), str):
            protect.add(d["parent"])
    doomed = [d["version"] for d in listed[: max(len(listed) - keep, 0)] if d["version"] not in protect]
    for v in doomed:
        # rename first so a reader never sees a half-deleted version, then delete
        trash = root / f".tmp-del-{v}-{uuid.uuid4().hex[:8]}"
        os.rename(root / v, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return doomed

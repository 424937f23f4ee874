"""``socrec snapshots list / promote / rollback``: operate the CURRENT pointer workers load at start."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from streams.cli._app import snapshots_app

_DIR = typer.Option(None, "--snapshot-dir", help="Snapshot root (default SOCREC_SNAPSHOT_DIR).")


def _root(snapshot_dir: Path | None) -> Path:
    from socrec_online.settings import Settings

    return snapshot_dir or Settings().snapshot_dir


@snapshots_app.command("list")
def list_cmd(snapshot_dir: Path | None = _DIR, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every version with its parent, creation time, validity and metrics; * marks CURRENT."""
    from socrec_online.snapshot import list_snapshots

    rows = list_snapshots(_root(snapshot_dir))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no snapshots under {_root(snapshot_dir)}: workers serve the zero-shot model")
        return
    table = Table()
    for name in ("", "version", "parent", "created (UTC)", "valid"):
        table.add_column(name, no_wrap=True)
    table.add_column("metrics", overflow="fold")
    for r in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(r.get("created", 0))))
        metrics = r.get("metrics") or {}
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, int | float))[:80]
        valid = "yes" if r["valid"] else f"NO ({r.get('error')})"
        table.add_row("*" if r["current"] else "", r["version"], str(r.get("parent") or ""), created, valid, shown)
    Console().print(table)


@snapshots_app.command("promote")
def promote_cmd(version: str, snapshot_dir: Path | None = _DIR) -> None:
    """Verify VERSION (checksums) and make it CURRENT; a bad snapshot is never promoted."""
    from socrec_online.snapshot import SnapshotError, promote

    try:
        promote(_root(snapshot_dir), version)
    except SnapshotError as e:
        typer.echo(f"refused: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"CURRENT = {version}")


@snapshots_app.command("rollback")
def rollback_cmd(
    snapshot_dir: Path | None = _DIR,
    announce: bool = typer.Option(
        True, "--announce/--no-announce", help="Announce the version on model-updates (workers follow)."
    ),
) -> None:
    """Move CURRENT back to the last good version (the parent chain first) and announce it."""
    from socrec_online.snapshot import SnapshotError, rollback

    root = _root(snapshot_dir)
    try:
        version = rollback(root)
    except SnapshotError as e:
        typer.echo(f"cannot roll back: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"CURRENT = {version}")
    if announce:
        _announce(root, version)


def _announce(root: Path, version: str) -> None:
    """Publish VERSION on model-updates (workers follow); the snapshot is verified first, so a
    worker is never told to load one it would refuse."""
    import asyncio

    from aiokafka.errors import KafkaError

    from socrec_online.settings import Settings
    from socrec_online.snapshot import SnapshotError, verify_snapshot
    from streams.model_updates import announce

    settings = Settings()
    path = root / version
    try:
        manifest = verify_snapshot(path)
        scores = {k: v for k, v in (manifest.get("metrics") or {}).items() if isinstance(v, int | float)}
        asyncio.run(announce(settings, version, str(path), scores))
    except (SnapshotError, KafkaError, OSError) as exc:  # CURRENT has moved anyway: say what did not happen
        typer.echo(f"CURRENT moved to {version}, but the announcement failed ({exc!r}): workers pick it up "
                   "on restart", err=True)  # fmt: skip
        raise typer.Exit(1) from None
    typer.echo(f"announced {version} on {settings.topic_prefix}model-updates")

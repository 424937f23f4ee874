"""Options several commands share, declared once, and the two things they all do with them.

An option that stands for a setting defaults to None, meaning "what ``SOCREC_*`` says": the
default lives in the Settings object only, and ``settings_with`` lays the flags given over the
environment. ``exit_with`` runs a service function in this process and exits with its code, so
``socrec worker`` is the worker process (signals reach it, its exit code is the command's).
Nothing here imports a Kafka client, torch or the settings module until a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer

if TYPE_CHECKING:
    from socrec_online.settings import Settings

Dataset = Literal["synthetic", "lastfm", "files"]
Device = Literal["auto", "cpu", "cuda"]

BootstrapOpt = Annotated[
    str | None, typer.Option("--bootstrap", help="host:port[,host:port] (overrides SOCREC_KAFKA_BOOTSTRAP).")
]
DeviceOpt = Annotated[Device | None, typer.Option("--device", help="Overrides SOCREC_DEVICE.")]
LoglevelOpt = Annotated[
    str | None, typer.Option("--loglevel", help="DEBUG | INFO | WARNING | ERROR (overrides SOCREC_LOG_LEVEL).")
]
DatasetOpt = Annotated[Dataset, typer.Option("--dataset", help="Which dataset (lastfm and files read --data-dir).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Dataset directory (lastfm, files).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="JSON output path.")]


def settings_with(*, bootstrap: str | None = None, device: str | None = None) -> Settings:
    """The ``SOCREC_*`` environment with the flags that override it (a flag left out changes nothing)."""
    from socrec_online.settings import Settings

    overrides: dict[str, str] = {}
    if bootstrap:
        overrides["kafka_bootstrap"] = bootstrap
    if device:
        overrides["device"] = device
    return Settings(**overrides)  # type: ignore[arg-type]


def exit_with(run: Callable[[], int | None]) -> NoReturn:
    """Run ``run`` and exit with the code it returns; Ctrl-C that reaches here exits 130 (128 + SIGINT)."""
    try:
        code = run()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        code = 130
    raise typer.Exit(int(code or 0))

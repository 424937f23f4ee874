"""The ``socrec`` console script, also ``python -m streams``: one typer app, one declaration per option.

Command modules register themselves on the shared apps when imported here; each command imports
what it runs inside its function, so ``socrec --help``, ``socrec train`` or ``socrec snapshots list``
load neither faust nor aiokafka (tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import typer

from streams.cli import (  # noqa: F401  (registration by import)
    bench_cmds,
    console_cmds,
    contract_cmds,
    model_cmds,
    nl_cmds,
    online_cmds,
    service_cmds,
    snapshot_cmds,
)
from streams.cli._app import app


@app.command("config")
def config_cmd(
    table: bool = typer.Option(False, "--table", help="Print the documented table of every setting."),
) -> None:
    """Show the effective settings (from SOCREC_* variables); secrets are masked."""
    from socrec_online.settings import Settings, settings_table

    if table:
        typer.echo(settings_table())
        return
    for name, value in Settings().model_dump().items():
        typer.echo(f"SOCREC_{name.upper()}={value}")


def main() -> None:
    app()


__all__ = ["app", "main"]

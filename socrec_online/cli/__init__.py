"""``socrec`` console script. Command modules register themselves on the shared apps."""

from __future__ import annotations

import typer

from socrec_online.cli import (  # noqa: F401  (registration by import)
    console_cmds,
    contract_cmds,
    model_cmds,
    nl_cmds,
    online_cmds,
    service_cmds,
    snapshot_cmds,
)
from socrec_online.cli._app import app


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

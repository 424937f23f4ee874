"""The typer apps every command module registers on (one tree, one ``socrec`` script)."""

from __future__ import annotations

import typer

import socrec_online
from streams.cli.bench_source import ensure_benchmarks

app = typer.Typer(
    name="socrec",
    help="socrec-online: a streaming social-network recommender on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
bench_app = typer.Typer(help="Benchmarks: each writes --out JSON and prints a table.", no_args_is_help=True)
snapshots_app = typer.Typer(help="Model versions: list, promote, rollback.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(snapshots_app, name="snapshots")


@bench_app.callback()
def _bench_group() -> None:
    ensure_benchmarks()  # before any command's lazy ``import benchmarks...``


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"socrec-online {socrec_online.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass

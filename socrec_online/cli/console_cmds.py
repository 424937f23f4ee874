"""``socrec produce TOPIC`` and ``socrec tail TOPIC``: JSON lines in, records out, from a shell.

The Kafka side runs in ``python -m streams`` (exec, like the service commands: this package
never imports a Kafka client); ``produce --check`` validates here, without a broker.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from socrec_online.cli._app import app
from socrec_online.cli.service_cmds import exec_streams


@app.command("produce")
def produce_cmd(
    topic: Annotated[
        str, typer.Argument(help="Input topic without SOCREC_TOPIC_PREFIX (clicks, likes, ...).")
    ],
    check: Annotated[
        bool,
        typer.Option("--check", help="Validate only: report invalid lines, send nothing, no broker needed."),
    ] = False,
) -> None:
    """Send JSON lines from stdin to TOPIC (prefix applied), keyed by the contract (user id; item id on
    items). Each line is validated by the worker's decoder first: an invalid one is reported with its
    line number and dead-letter reason and not sent; the exit code is 1 if any was invalid."""
    from socrec_online.console import check_lines, invalid_line_report
    from socrec_online.events import INPUT_TOPICS
    from socrec_online.settings import Settings

    if topic not in INPUT_TOPICS:
        raise typer.BadParameter(f"{topic!r} is not an input topic; input topics: {', '.join(INPUT_TOPICS)}")
    if not check:
        exec_streams("produce", topic)
    invalid = valid = 0
    for line in check_lines(topic, sys.stdin.buffer, Settings()):
        if line.error is None:
            valid += 1
            continue
        invalid += 1
        typer.echo(invalid_line_report(line), err=True)
    typer.echo(f"{valid} valid lines, {invalid} invalid (nothing sent: --check)")
    raise typer.Exit(1 if invalid else 0)


@app.command("tail")
def tail_cmd(
    topic: Annotated[
        str,
        typer.Argument(
            help="Topic without SOCREC_TOPIC_PREFIX (recommendations, dead-letters, clicks, ...)."
        ),
    ],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record (default: only new ones).")
    ] = False,
    max_records: Annotated[
        int | None,
        typer.Option("--max", min=1, help="Stop after this many records (default: follow until Ctrl-C)."),
    ] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print each value as it is, one per line (for jq).")
    ] = False,
) -> None:
    """Print TOPIC's records as they arrive, for people: recommendations with their items and reasons,
    dead letters with their reason; no consumer group, nothing committed."""
    args = ["tail", topic]
    if from_beginning:
        args.append("--from-beginning")
    if max_records is not None:
        args += ["--max", str(max_records)]
    if raw:
        args.append("--raw")
    exec_streams(*args)

"""``socrec produce TOPIC`` and ``socrec tail TOPIC``: JSON lines in, records out, from a shell.

The Kafka side is ``streams.console``, imported only when a command sends or reads;
``produce --check`` validates without a broker and without a Kafka client.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli._app import app
from streams.cli.options import BootstrapOpt, exit_with, settings_with

if TYPE_CHECKING:
    from socrec_online.settings import Settings


@app.command("produce")
def produce_cmd(
    topic: Annotated[
        str, typer.Argument(help="Input topic without SOCREC_TOPIC_PREFIX (clicks, likes, ...).")
    ],
    check: Annotated[
        bool,
        typer.Option("--check", help="Validate only: report invalid lines, send nothing, no broker needed."),
    ] = False,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Send JSON lines from stdin to TOPIC (prefix applied), keyed by the contract (user id; item id on
    items). Each line is validated by the worker's decoder first: an invalid one is reported with its
    line number and dead-letter reason and not sent; the exit code is 1 if any was invalid."""
    from socrec_online.console import check_lines, invalid_line_report
    from socrec_online.events import INPUT_TOPICS

    if topic not in INPUT_TOPICS:
        raise typer.BadParameter(f"{topic!r} is not an input topic; input topics: {', '.join(INPUT_TOPICS)}")
    settings = settings_with(bootstrap=bootstrap)
    if not check:
        exit_with(lambda: _send(topic, settings))
    invalid = valid = 0
    for line in check_lines(topic, sys.stdin.buffer, settings):
        if line.error is None:
            valid += 1
            continue
        invalid += 1
        typer.echo(invalid_line_report(line), err=True)
    typer.echo(f"{valid} valid lines, {invalid} invalid (nothing sent: --check)")
    raise typer.Exit(1 if invalid else 0)


def _send(topic: str, settings: Settings) -> int:
    """stdin's valid lines to ``topic``: 0 all valid, 1 some invalid, 2 the topics do not fit."""
    import asyncio

    from streams.admin import TopicMismatchError
    from streams.console import produce_lines

    try:
        return asyncio.run(produce_lines(settings, topic, sys.stdin.buffer))
    except TopicMismatchError as e:
        typer.echo(str(e), err=True)
        return 2


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
    bootstrap: BootstrapOpt = None,
) -> None:
    """Print TOPIC's records as they arrive, for people: recommendations with their items and reasons,
    dead letters with their reason; no consumer group, nothing committed."""
    import asyncio

    from streams.console import tail

    settings = settings_with(bootstrap=bootstrap)
    try:
        code = asyncio.run(tail(settings, topic, from_beginning=from_beginning, max_records=max_records, raw=raw))
    except KeyboardInterrupt:  # following until Ctrl-C is the normal way to use it
        code = 0
    raise typer.Exit(code)

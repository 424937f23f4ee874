"""``socrec schema [TOPIC]``: the topics' JSON Schemas (socrec_online/contract.py), for producers to validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from streams.cli._app import app


@app.command("schema")
def schema_cmd(
    topic: Annotated[
        str | None, typer.Argument(help="A topic (clicks, ..., recommendations, dead-letters); all when left out.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write <topic>.schema.json files into this directory instead.")
    ] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a topic's value, with the bounds of the effective settings."""
    from socrec_online.contract import (
        TOPICS,
        UnknownTopicError,
        dumps,
        topic_schema,
        topic_schemas,
        write_schemas,
    )
    from socrec_online.settings import Settings

    settings = Settings()
    if out is not None:
        if topic is not None:
            raise typer.BadParameter("--out writes every topic; leave TOPIC out", param_hint="TOPIC")
        for path in write_schemas(out, settings):
            typer.echo(str(path))
        return
    if topic is None:
        typer.echo(json.dumps(topic_schemas(settings), indent=2, ensure_ascii=False))
        return
    try:
        schema = topic_schema(topic, settings)
    except UnknownTopicError:
        raise typer.BadParameter(
            f"no topic named {topic!r}; topics: {', '.join(TOPICS)}", param_hint="TOPIC"
        ) from None
    typer.echo(dumps(schema), nl=False)

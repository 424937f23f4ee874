"""``socrec`` console script. Command modules register themselves on the shared apps."""

from __future__ import annotations

from socrec_online.cli import model_cmds, service_cmds  # noqa: F401  (registration by import)
from socrec_online.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]

"""Where ``socrec bench`` finds its code: the ``benchmarks`` package of a source checkout.

The benchmarks are not in the wheel (they drive the product from outside and carry their own data),
so an install from PyPI has none and says so. An editable install (``pip install -e .``) maps only
the shipped packages, so the checkout next to ``socrec_online`` is put on the path here (for
``benchmarks`` and the ``fuzz`` target the reliability bench runs), and on ``PYTHONPATH`` for the
child processes a bench starts.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import typer

import socrec_online

NO_BENCHMARKS = (
    "socrec bench: the benchmarks run from a source checkout (git clone the repository, then "
    "pip install -e '.[dev]' and run socrec bench there); this install has no benchmarks package."
)


def checkout_root() -> Path | None:
    """The source checkout this ``socrec_online`` was installed from, if it has ``benchmarks/``."""
    root = Path(socrec_online.__file__).parent.parent
    return root if (root / "benchmarks" / "__init__.py").is_file() else None


def ensure_benchmarks() -> None:
    """Make ``benchmarks`` importable, or exit with code 2 and :data:`NO_BENCHMARKS` on stderr."""
    if importlib.util.find_spec("benchmarks") is not None:
        return
    root = checkout_root()
    if root is None:
        typer.echo(NO_BENCHMARKS, err=True)
        raise typer.Exit(2)
    sys.path.append(str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(root)) if p)


__all__ = ["NO_BENCHMARKS", "checkout_root", "ensure_benchmarks"]

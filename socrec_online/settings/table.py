"""The settings reference as Markdown (docs/settings.md): one heading and one table per section."""

from __future__ import annotations

import inspect
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

HEADER = ("| env var | type | default | bounds | description |", "|---|---|---|---|---|")
_BOUNDS = ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"), (annotated_types.Le, "le", "<="),
           (annotated_types.Lt, "lt", "<"))  # fmt: skip
_NAMES: dict[Any, str] = {SecretStr: "secret", Path: "path"}


def type_name(annotation: Any) -> str:
    """How a field's type reads in the table: ``path, optional``, ``one of: kafka, embedded``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(v) for v in get_args(annotation))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = " or ".join(type_name(a) for a in args)
        return f"{inner}, optional" if len(args) < len(get_args(annotation)) else inner
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def bounds_text(field: FieldInfo) -> str:
    return ", ".join(
        f"{sym} {getattr(m, attr)}" for m in field.metadata for cls, attr, sym in _BOUNDS if isinstance(m, cls)
    )


def default_text(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, Path):
        return f"`{default.as_posix()}`"
    return f"`{default}`" if default != "" else '`""`'


def section_table(title: str, section: type[BaseModel]) -> str:
    """``## title``, the section class's docstring and the table of its own fields."""
    summary = " ".join((inspect.getdoc(section) or "").split())
    source = f"`{section.__module__.replace('.', '/')}.py`"
    rows = [f"## {title}", "", f"{summary} Declared in {source}.", "", *HEADER]
    for name, f in section.model_fields.items():
        rows.append(
            f"| `SOCREC_{name.upper()}` | {type_name(f.annotation)} | {default_text(f.default)} | "
            f"{bounds_text(f)} | {f.description} |"
        )
    return "\n".join(rows)


def markdown_table(sections: Sequence[tuple[str, type[BaseModel]]]) -> str:
    return "\n\n".join(section_table(title, section) for title, section in sections)

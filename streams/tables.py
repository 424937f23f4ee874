"""The changelog-backed Faust tables the engine's state is rebuilt from after a restart.

Keys are UTF-8 strings encoded exactly like the input topics' keys and placed with the
producer's partitioner (``use_partitioner``): a table key then lives in the same partition
number as the events keyed by it (co-partitioned), whatever event of a mixed micro-batch
wrote it, so recovery of an assigned partition brings back exactly the keys it owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import faust
from faust.serializers import codecs

from socrec_online.settings import Settings


class Utf8(codecs.Codec):
    """str <-> UTF-8 bytes (Faust's ``raw`` would hand keys back as bytes after recovery)."""

    def _dumps(self, s: Any) -> bytes:
        return s.encode("utf-8") if isinstance(s, str) else bytes(s)

    def _loads(self, s: bytes) -> str:
        return s.decode("utf-8", "replace")


codecs.register("utf8", Utf8())


def declare_tables(app: faust.App, settings: Settings, names: Iterable[str]) -> dict[str, faust.Table]:
    return {
        name: app.Table(
            name,
            default=None,
            schema=faust.Schema(key_serializer="utf8", value_serializer="json"),
            partitions=settings.partitions,
            use_partitioner=True,
            help=f"engine state '{name}' (derived state is rebuilt from it at start)",
        )
        for name in names
    }


def apply_updates(tables: Mapping[str, faust.Table], updates: Mapping[str, Mapping[str, Any]]) -> int:
    """Write the engine's full new values (None deletes); returns the number of keys written."""
    n = 0
    for name, kv in updates.items():
        table = tables[name]
        for key, value in kv.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            n += 1
    return n


def snapshot_tables(tables: Mapping[str, faust.Table]) -> dict[str, dict[str, Any]]:
    """Plain dict copies (str keys) for Engine.restore."""
    out: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        out[name] = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in table.items()}
    return out

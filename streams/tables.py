"""The changelog-backed Faust tables the engine's state is rebuilt from after a restart.

Keys are UTF-8 strings encoded exactly like the input topics' keys and placed with the
producer's partitioner (``use_partitioner``): a table key then lives in the same partition
number as the events keyed by it (co-partitioned), whatever event of a mixed micro-batch
wrote it, so recovery of an assigned partition brings back exactly the keys it owns.

Fences (embedded Tansu broker only): Tansu answers ListOffsets(latest) with the start of the
partition's last record batch + 1, so Faust's recovery stops inside that batch and drops its tail.
After writing a micro-batch's changes, the worker flushes them (so they are in earlier batches)
and then writes one small fence record to every partition of each changelog it wrote. Until the
next flush nothing else is appended, so the last batch of a partition starts with a fence and
recovery reads everything before it: all changes of every committed micro-batch (offsets are
committed after the fence is flushed; a micro-batch cut short is replayed, idempotently). This
replaced producing every changelog record as its own batch, which cost a produce request per
record. Fence keys are never table state: ``snapshot_tables`` drops them.
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
    tables: dict[str, Any] = {
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
    for table in tables.values():
        # Faust sends changelog keys with a serializer derived from key_type (JSON: '"u1"'), not the
        # schema's, and murmur2('"u1"') puts the key in another partition than the events keyed 'u1'
        # (measured: 1 key in 3); with two workers a user's state then recovers on the wrong one.
        # Raw UTF-8 keys, like the input topics', keep them co-partitioned.
        table.key_serializer = "utf8"
        table._changelog_topic = None  # re-made lazily with that serializer, before anything uses it
    return tables


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


FENCE_KEY = "\x00fence"


async def fence(tables: Mapping[str, faust.Table], names: Iterable[str], partitions: int, seq: int) -> int:
    """Flush the changelog writes so far, then write a fence to every partition of ``names``."""
    written = [tables[n] for n in names]
    if not written:
        return 0
    await written[0].app.producer.flush()
    for table in written:
        for p in range(partitions):
            table.send_changelog(p, FENCE_KEY, {"fence": seq})
    return len(written) * partitions


def snapshot_tables(tables: Mapping[str, faust.Table]) -> dict[str, dict[str, Any]]:
    """Plain dict copies (str keys) for Engine.restore."""
    out: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        kv = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in table.items()}
        kv.pop(FENCE_KEY, None)
        out[name] = kv
    return out

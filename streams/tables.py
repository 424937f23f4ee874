"""The changelog-backed Faust tables the engine's state is rebuilt from after a restart.

Keys are UTF-8 strings encoded exactly like the input topics' keys and placed with the
producer's partitioner (``use_partitioner``): a table key then lives in the same partition
number as the events keyed by it (co-partitioned), whatever event of a mixed micro-batch
wrote it, so recovery of an assigned partition brings back exactly the keys it owns.

Fences (embedded Tansu broker only): Tansu answers ListOffsets(latest) with the start of the
partition's last record batch + 1, so Faust's recovery stops inside that batch and drops its tail.
After writing a micro-batch's changes, the worker waits until the broker acknowledged every one
of them (so they are in earlier batches) and then writes one small fence record to every
partition of each changelog it wrote; the fences are acknowledged before the batch's offsets may
be committed. Until then nothing else is appended, so the last batch of a partition starts with a
fence and recovery reads everything before it: all changes of every committed micro-batch (a
micro-batch cut short is replayed, idempotently). This replaced producing every changelog record
as its own batch, which cost a produce request per record. Fence keys are never table state:
``snapshot_tables`` drops them.

Acknowledged, not flushed: Faust's ``producer.flush()`` gives up after 0.1 s without progress and
does not wait for a record its send task has taken off the buffer but not yet handed to the
Kafka client, so state records could still follow it into the fence's batch; a recovery then
stopped at that batch's first record while the offsets were committed (kill -9 lost events:
issue #6). :class:`ChangelogTable` keeps the future of every changelog record it sends, and
:func:`settle` waits for them, on any broker: a committed offset never runs ahead of the
changelog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import FutureMessage

from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings

log = logging.getLogger("socrec.tables")
SETTLE_RETRIES = 5
SETTLE_RETRY_S = 1.0


class Utf8(codecs.Codec):
    """str <-> UTF-8 bytes (Faust's ``raw`` would hand keys back as bytes after recovery)."""

    def _dumps(self, s: Any) -> bytes:
        return s.encode("utf-8") if isinstance(s, str) else bytes(s)

    def _loads(self, s: bytes) -> str:
        return s.decode("utf-8", "replace")


codecs.register("utf8", Utf8())


class ChangelogTable(faust.Table):  # type: ignore[misc]
    """A Faust table that keeps the future of every changelog record until :func:`settle`.

    It also places each record itself, in ``owner_partition(key)`` (the producer's murmur2, so
    keys stay co-partitioned with the input topics): Faust's own placement (``use_partitioner``
    with eager partitioning) asks the producer's metadata synchronously, which does not know a
    changelog topic before the first send to it, and the worker crashed with ``TypeError:
    'NoneType' object is not iterable`` from aiokafka's ``_partition`` on its first write. With the
    partition given, the producer waits for the topic's metadata before it sends.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsettled: list[FutureMessage] = []

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        if partition is None:
            partition = owner_partition(key if isinstance(key, str | bytes) else str(key), self.partitions)
        fut = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self.unsettled.append(fut)
        return fut


def declare_tables(app: faust.App, settings: Settings, names: Iterable[str]) -> dict[str, faust.Table]:
    tables: dict[str, Any] = {
        name: app.tables.add(
            ChangelogTable(
                app,
                name=name,
                default=None,
                beacon=app.tables.beacon,
                schema=faust.Schema(key_serializer="utf8", value_serializer="json"),
                partitions=settings.partitions,
                use_partitioner=True,
                help=f"engine state '{name}' (derived state is rebuilt from it at start)",
            )
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


def apply_updates(
    tables: Mapping[str, MutableMapping[str, Any]], updates: Mapping[str, Mapping[str, Any]]
) -> int:
    """Write the engine's full new values (None deletes) to Faust tables or plain dicts; returns
    the number of keys written."""
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


async def settle(tables: Mapping[str, faust.Table], settings: Settings | None = None) -> int:
    """Wait until the broker acknowledged every changelog record sent so far; returns how many.

    A record the broker refused is written again, a few times with a pause (with ``settings``,
    after creating its topic if the broker lost it: a restarted in-memory broker answers writes to
    a topic it no longer has with an error); then the error is raised, since a changelog that
    cannot be written is an infrastructure error and the batch must not be committed.
    """
    futures: list[FutureMessage] = []
    for table in tables.values():
        pending = getattr(table, "unsettled", None)
        if pending:
            futures.extend(pending)
            pending.clear()
    failed = await _failed(futures)
    for attempt in range(1, SETTLE_RETRIES + 1):
        if not failed:
            break
        log.warning(
            "%d changelog writes failed (%r); writing them again (%d/%d)",
            len(failed), failed[0].exception(), attempt, SETTLE_RETRIES,
        )  # fmt: skip
        await asyncio.sleep(SETTLE_RETRY_S * attempt)
        if settings is not None:
            from streams.admin import ensure_topics

            topics = {f.message.channel.get_topic_name(): settings.partitions for f in failed}  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):  # the write below tells whether it helped
                await ensure_topics(settings, topics)
        again = [FutureMessage(f.message) for f in failed]
        for fut in again:
            fut.message.channel.app.producer.send_soon(fut)  # type: ignore[attr-defined]
        failed = await _failed(again)
    if failed:
        raise failed[0].exception()  # type: ignore[misc]
    return len(futures)


async def _failed(futures: list[FutureMessage]) -> list[FutureMessage]:
    if not futures:
        return []
    await asyncio.gather(*futures, return_exceptions=True)
    return [f for f in futures if f.cancelled() or f.exception() is not None]


async def fence(tables: Mapping[str, faust.Table], names: Iterable[str], partitions: int, seq: int) -> int:
    """Once the changes so far are acknowledged, send a fence to every partition of ``names``.

    The fences are not awaited here: :func:`settle` them before the batch's offsets are committed.
    """
    written = [tables[n] for n in names]
    if not written:
        return 0
    await settle(tables)  # no state record can now share a record batch with a fence
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

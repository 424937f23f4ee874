"""``socrec bench reliability`` and the machinery of ``tests/reliability``: crashes, poison, load.

Everything here treats the worker as a black box: a ``python -m streams worker`` process, its
Kafka topics, and its metrics server (``/metrics``, ``/healthz``, ``/debug/state``). So the
same scenarios hold whether the engine runs on a thread or in a child process of the worker.

Scenarios (each returns plain JSON-able figures; the tests assert on them, the bench prints them):

- :func:`crash_scenario`: a stream whose event ids carry per-partition sequence numbers is
  produced at a fixed rate while the worker is ``kill -9``-ed at random points; after the last
  restart the worker's table state must equal a *replay oracle* (a fresh engine fed every
  record read back from the source topics): 0 differing keys, 0 lost, 0 doubled.
- :func:`graceful_scenario`: SIGTERM under load: exit time, committed offsets against what the
  changelog says was applied, then a restart and the same oracle comparison.
- :func:`poison_scenario` (``benchmarks/poison.py``): bad records of every kind interleaved with good ones:
  every bad one in ``dead-letters`` with its reason and origin, every good one applied, the
  same worker process throughout.
- :func:`load_scenario`: a fixed rate for a bounded duration over a bounded key space: lag,
  drain time, resident memory growth after warm-up, end-to-end latency percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from socrec_online.broker import free_port
from socrec_online.brokers import make_broker
from socrec_online.events import (
    INPUT_TOPICS,
    Click,
    Comment,
    Event,
    Follow,
    ItemPublished,
    Like,
    Profile,
    key_of,
)
from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from benchmarks import hostile as bench_hostile
from benchmarks.poison import answered_stream, poison_records, poison_scenario, table_of
from streams.observe import OutputWatcher, events_done, percentiles, percentiles_ms, scrape
from streams.procs import WorkerProcess
from streams.replay import EventProducer, ProduceStats, produce

# Per key, the engine remembers the last ``dedup_ids_per_key`` (64) event ids and the last
# ``recent_per_user`` (50) engaged items: generated streams stay below both, so "every effect
# exactly once" is checkable key by key (beyond them, dedup is bounded by design).
MAX_ACTIVITY_PER_USER = 55
MAX_ITEMS_PER_USER = 45
MAX_FOLLOWS_PER_USER = 40
MAX_COMMENTS_PER_USER = 5
_WORDS = ["cycling", "jazz", "baking", "astronomy", "gardening", "chess", "football", "poetry", "sushi", "hiking", "opera", "robotics", "painting", "surfing", "coffee", "history", "vinyl", "climbing", "knitting", "photography"]


# ----------------------------------------------------------------------------- Kafka I/O
@dataclass
class Record:
    topic: str  # full name (with the prefix)
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: tuple[tuple[str, bytes], ...] = ()

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value else None


async def read_topics(settings: Settings, names: Iterable[str], timeout: float = 30.0) -> list[Record]:
    """Every record now in ``names`` (full topic names), from the beginning, in partition order."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.app import kafka_client_kwargs

    c = AIOKafkaConsumer(
        **kafka_client_kwargs(settings), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [
            TopicPartition(n, p) for n in names for p in sorted(c.partitions_for_topic(n) or ())
        ]
        if not tps:
            return []
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        # Tansu's ListOffsets(latest) can point inside the last batch: read until every end
        # offset is passed *and* a poll comes back empty.
        while time.monotonic() < deadline:
            batch = await c.getmany(*tps, timeout_ms=300, max_records=5000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(Record(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp / 1000, tuple(m.headers or ())))
            if not batch:
                positions = [await c.position(tp) for tp in tps]
                if all(p >= end[tp] for p, tp in zip(positions, tps, strict=True)):
                    break
        return out
    finally:
        await c.stop()


async def end_offsets(settings: Settings, names: Iterable[str]) -> dict[tuple[str, int], int]:
    """What the broker answers ListOffsets(latest) with, per (topic, partition): what a recovery reads up to."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.app import kafka_client_kwargs

    c = AIOKafkaConsumer(**kafka_client_kwargs(settings), group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [TopicPartition(n, p) for n in names for p in sorted(c.partitions_for_topic(n) or ())]
        end = await c.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): int(o) for tp, o in end.items()}
    finally:
        await c.stop()


# ----------------------------------------------------------------------------- the rig
class Rig:
    """One worker (a real process) on a broker of ``broker_kind``, with its own topic prefix and group."""

    def __init__(
        self,
        bootstrap: str,
        workdir: Path,
        prefix: str,
        *,
        text_model: Path | None = None,
        partitions: int = 3,
        env: dict[str, str] | None = None,
        loglevel: str = "INFO",
        broker_kind: str = "kafka",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.loglevel = loglevel
        self.env = {
            "SOCREC_KAFKA_BOOTSTRAP": bootstrap,
            "SOCREC_BROKER": broker_kind,
            "SOCREC_TOPIC_PREFIX": prefix,
            "SOCREC_APP_ID": f"rel-{prefix.strip('.')}",
            "SOCREC_PARTITIONS": str(partitions),
            "SOCREC_METRICS_PORT": str(free_port()),
            "SOCREC_WEB_PORT": str(free_port()),
            "SOCREC_DATA_DIR": str(self.workdir / "data"),
            "SOCREC_SNAPSHOT_DIR": str(self.workdir / "snapshots"),
            "SOCREC_DEBUG_STATE_ROUTE": "true",
            "SOCREC_DEVICE": os.environ.get("SOCREC_DEVICE", "cpu"),
        }
        if text_model is not None:
            self.env["SOCREC_TEXT_MODEL_PATH"] = str(text_model)
        self.env.update(env or {})
        self.worker: WorkerProcess | None = None
        self.starts = 0

    @property
    def settings(self) -> Settings:
        return Settings(**{k[len("SOCREC_") :].lower(): v for k, v in self.env.items()})  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return int(self.env["SOCREC_METRICS_PORT"])

    @property
    def pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else None

    def topic(self, base: str) -> str:
        return f"{self.prefix}{base}"

    # -- worker lifecycle (blocking; call through asyncio.to_thread from async code) ------
    def start(self, timeout: float = 300.0) -> float:
        """Start a worker process and wait until it is ready (tables recovered); returns the seconds."""
        self.starts += 1
        t0 = time.monotonic()
        self.worker = WorkerProcess(
            self.env, log_path=self.workdir / f"worker-{self.starts}.log", loglevel=self.loglevel
        )
        self.worker.start()
        self.worker.wait_ready(timeout)
        return time.monotonic() - t0

    def kill(self) -> None:
        """``kill -9`` the worker (its whole process group: an engine child dies with it)."""
        if self.worker is not None:
            self.worker.kill()

    def terminate(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit code, seconds to exit). SIGKILL (code -9) past ``timeout``."""
        if self.worker is None:
            return None, 0.0
        t0 = time.monotonic()
        rc = self.worker.stop(timeout=timeout)
        return rc, time.monotonic() - t0

    def stop(self) -> None:
        if self.worker is not None and self.worker.alive():
            self.worker.stop()

    def log_tail(self, n: int = 4000) -> str:
        return self.worker.log_tail(n) if self.worker is not None else ""

    # -- observation ------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        return scrape(self.port)

    def get(self, path: str, timeout: float = 35.0) -> tuple[int, Any]:
        """GET a JSON route of the worker's metrics server: (status, parsed body); (0, None) when down."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return int(r.status), orjson.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            return int(e.code), (orjson.loads(body) if body else None)
        except (OSError, ValueError):
            return 0, None

    def state(self) -> dict[str, Any] | None:
        status, body = self.get("/debug/state")
        return body if status == 200 else None

    def health(self) -> tuple[int, Any]:
        return self.get("/healthz", timeout=5.0)

    # -- Kafka ------------------------------------------------------------------------------
    async def ensure_topics(self) -> None:
        from streams.admin import ensure_topics
        from streams.topics import required_topics

        s = self.settings
        await ensure_topics(s, required_topics(s))

    async def produce(
        self, events: Iterable[Event], rate: float = 0.0, on_sent: Callable[[Event], None] | None = None
    ) -> ProduceStats:
        async with EventProducer(self.settings) as p:
            return await produce(p, events, rate, on_sent=on_sent)

    async def produce_raw(self, records: Iterable[tuple[str, str | None, bytes]]) -> list[Any]:
        """(base topic, key, value) records as they are; returns their RecordMetadata in order."""
        async with EventProducer(self.settings) as p:
            futs = [await p.send_raw(t, k, v) for t, k, v in records]
            return list(await asyncio.gather(*futs))

    async def inputs(self) -> list[Record]:
        return await read_topics(self.settings, [self.topic(t) for t in INPUT_TOPICS])

    async def dead_letters(self) -> list[Record]:
        return await read_topics(self.settings, [self.topic("dead-letters")])

    async def recommendations(self) -> list[Record]:
        return await read_topics(self.settings, [self.topic("recommendations")])

    async def changelog_records(self) -> dict[str, list[tuple[Record, str]]]:
        """Every changelog record per table, with its key decoded (fence records left out)."""
        from socrec_online.service.engine import Engine

        app_id = self.env["SOCREC_APP_ID"]
        out: dict[str, list[tuple[Record, str]]] = {}
        for table in Engine.TABLES:
            rows: list[tuple[Record, str]] = []
            for r in await read_topics(self.settings, [f"{app_id}-{table}-changelog"]):
                k = (r.key or b"").decode("utf-8", "replace")
                if k.startswith('"'):  # a JSON-encoded key (older workers)
                    with contextlib.suppress(ValueError):
                        k = str(orjson.loads(k))
                if k.startswith("\x00"):  # streams.tables fence records, never state
                    continue
                rows.append((r, k))
            out[table] = rows
        return out

    async def changelog(self) -> dict[str, dict[str, Any]]:
        """The tables as their changelog topics hold them now (last value per key; deletes dropped)."""
        out: dict[str, dict[str, Any]] = {}
        for table, rows in (await self.changelog_records()).items():
            kv: dict[str, Any] = {}
            for r, k in rows:
                if r.value is None:
                    kv.pop(k, None)
                else:
                    kv[k] = orjson.loads(r.value)
            out[table] = kv
        return out

    def changelog_topics(self) -> list[str]:
        from socrec_online.service.engine import Engine

        return [f"{self.env['SOCREC_APP_ID']}-{table}-changelog" for table in Engine.TABLES]

    async def changelog_cut(self) -> dict[str, Any]:
        """What a table recovery would miss now: changelog records at or past the broker's reported end.

        Faust recovers a changelog partition up to ListOffsets(latest); Tansu reports the start of
        the last record batch + 1 there, so only a fence may sit past it (``streams/tables.py``).
        Any state record past it is dropped by the next recovery: the crash test records this at
        every kill, so a loss can be told apart from a stalled worker or an early oracle.
        """
        names = self.changelog_topics()
        end = await end_offsets(self.settings, names)
        records = await read_topics(self.settings, names)
        committed = await self.committed()
        source: dict[str, tuple[str, int, int]] = {}  # event id -> where it sits in the input topics
        for r in await self.inputs():
            with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
                source[str(r.json()["event_id"])] = (r.topic, r.partition, r.offset)
        true_end: dict[tuple[str, int], int] = {}
        cut: list[str] = []
        recovered: dict[tuple[str, str], set[str]] = {}  # (topic, key) -> event ids a recovery reads back
        lost: list[str] = []
        for r in records:
            tp = (r.topic, r.partition)
            true_end[tp] = max(true_end.get(tp, 0), r.offset + 1)
            key = (r.key or b"").decode("utf-8", "replace")
            if key.startswith("\x00"):
                continue
            ids = set((r.json() or {}).get("ids") or ())
            if r.offset < end.get(tp, 0):
                recovered[(r.topic, key)] = ids
                continue
            cut.append(f"{r.topic}/{r.partition}@{r.offset}:{key}")
            # Effects only this unread record holds, of events whose offsets are already committed:
            # the restart neither recovers them nor replays their events (lost for good).
            for eid in ids - recovered.get((r.topic, key), set()):
                t, p, o = source.get(eid, ("?", -1, -1))
                if o >= 0 and o < committed.get((t, p), 0):
                    lost.append(eid)
        return {
            "state_records_past_end": len(cut),
            "committed_effects_past_end": len(lost),
            "lost_examples": sorted(lost)[:10],
            "examples": cut[:10],
            "partitions_short": sum(1 for tp, e in true_end.items() if e > end.get(tp, 0)),
            "reported_end": {f"{t}/{p}": o for (t, p), o in sorted(end.items())},
            "true_end": {f"{t}/{p}": o for (t, p), o in sorted(true_end.items())},
        }

    async def misplaced_changelog_keys(self) -> int:
        """Changelog records not in the partition of the input events keyed like them (co-partitioning)."""
        n = int(self.env["SOCREC_PARTITIONS"])
        return sum(
            1 for rows in (await self.changelog_records()).values() for r, k in rows if r.partition != owner_partition(k, n)
        )

    async def committed(self) -> dict[tuple[str, int], int]:
        """The consumer group's committed offsets of the input topics: (topic, partition) -> offset.

        Read with a manually assigned consumer of the group (OffsetFetch without joining it);
        aiokafka's admin client cannot decode Tansu's OffsetFetch answer.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.app import kafka_client_kwargs

        c = AIOKafkaConsumer(
            **kafka_client_kwargs(self.settings), group_id=self.env["SOCREC_APP_ID"], enable_auto_commit=False
        )
        await c.start()
        try:
            await c._client.force_metadata_update()
            tps = [
                TopicPartition(self.topic(t), p)
                for t in INPUT_TOPICS
                for p in sorted(c.partitions_for_topic(self.topic(t)) or ())
            ]
            c.assign(tps)
            out: dict[tuple[str, int], int] = {}
            for tp in tps:
                off = await c.committed(tp)
                if off is not None and off >= 0:
                    out[(tp.topic, tp.partition)] = int(off)
            return out
        finally:
            await c.stop()


# ----------------------------------------------------------------------------- streams
def _text(rng: random.Random, n: int = 4) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def make_stream(n_events: int, *, partitions: int, seed: int = 0, tag: str = "s") -> list[Event]:
    """A causal social stream (items first) whose event ids are ``{tag}.{topic}.p{partition}.{seq}``.

    Per key the stream stays inside the engine's recency windows (module constants), so the oracle
    comparison can demand every effect exactly once. ``ts`` is re-stamped when sent.
    """
    rng = random.Random(seed)
    n_items = max(20, n_events // 10)
    n_users = max(20, n_events // 15)
    users = [f"{tag}u{i}" for i in range(n_users)]
    items = [f"{tag}i{j}" for j in range(n_items)]
    seq: dict[tuple[str, int], int] = {}

    def eid(topic: str, key: str) -> str:
        p = owner_partition(key, partitions)
        n = seq.get((topic, p), 0)
        seq[(topic, p)] = n + 1
        return f"{tag}.{topic}.p{p}.{n:07d}"

    t = time.time()
    out: list[Event] = [
        ItemPublished(eid("items", i), i, t, _text(rng, 6), author_id=rng.choice(users)) for i in items
    ]
    act = dict.fromkeys(users, 0)
    soc = dict.fromkeys(users, 0)
    comments = dict.fromkeys(users, 0)
    profiled: set[str] = set()
    engaged: dict[tuple[str, str], set[str]] = {}
    touched_items: dict[str, set[str]] = {u: set() for u in users}
    following: dict[str, set[str]] = {u: set() for u in users}
    guard = 0
    while len(out) < n_events and guard < n_events * 20:
        guard += 1
        u = rng.choice(users)
        r = rng.random()
        if r < 0.18:
            if soc[u] >= MAX_FOLLOWS_PER_USER:
                continue
            if following[u] and rng.random() < 0.15:
                v = rng.choice(sorted(following[u]))
                out.append(Follow(eid("follows", u), u, v, t, undo=True))
                following[u].discard(v)
            else:
                v = rng.choice(users)
                if v == u:
                    continue
                out.append(Follow(eid("follows", u), u, v, t))
                following[u].add(v)
            soc[u] += 1
            continue
        if act[u] >= MAX_ACTIVITY_PER_USER:
            continue
        if r < 0.22:
            if u in profiled and rng.random() < 0.7:
                continue
            out.append(Profile(eid("profiles", u), u, t, f"I like {_text(rng, 3)}"))
            profiled.add(u)
            act[u] += 1
            continue
        kind = "clicks" if r < 0.70 else "likes" if r < 0.93 else "comments"
        if kind == "comments" and comments[u] >= MAX_COMMENTS_PER_USER:
            continue
        done = engaged.setdefault((u, kind), set())
        said = engaged.setdefault((u, "comments"), set())
        # A negative comment overrides an earlier click on the same item, so that item's weight
        # depends on the order of two topics, which Kafka does not define: comments get items of
        # their own (the oracle then needs no cross-topic order).
        pool = [i for i in touched_items[u] if i not in done and i not in said] if kind != "comments" else []
        if pool and rng.random() < 0.4:
            item = rng.choice(sorted(pool))
        else:
            if len(touched_items[u]) >= MAX_ITEMS_PER_USER:
                continue
            item = rng.choice(items)
            if item in done or (kind == "comments" and item in touched_items[u]) or item in said:
                continue
        done.add(item)
        touched_items[u].add(item)
        act[u] += 1
        if kind == "clicks":
            out.append(Click(eid(kind, u), u, item, t, dwell_ms=rng.choice([None, 400, 5000])))
        elif kind == "likes":
            out.append(Like(eid(kind, u), u, item, t))
        else:
            comments[u] += 1
            text = rng.choice(["this is wonderful, I love it", "awful and boring", f"about {_text(rng, 2)}"])
            out.append(Comment(eid(kind, u), u, item, t, text))
    return out


# ----------------------------------------------------------------------------- the oracle
def replay_oracle(
    records: list[Record], settings: Settings, text_model: Path | None, prefix: str = ""
) -> tuple[dict[str, dict[str, Any]], dict[str, int], list[tuple[str, str, str]]]:
    """A fresh engine fed every good source record: (tables, engine stats, [(table, key, event id)]).

    Items first (a worker holds an interaction until its item arrives), then every input topic
    partition in offset order: the only order the worker promises (per key) too.
    """
    from socrec_online.models.text import TextEncoder, TextEncoderConfig
    from socrec_online.service.decode import DecodeError, decode_event
    from socrec_online.service.engine import Engine

    s = settings.model_copy(update={"device": "cpu", "text_model_path": text_model})
    engine = Engine(s, TextEncoder(TextEncoderConfig.from_settings(s)))
    ordered = sorted(records, key=lambda r: (r.topic != f"{prefix}items", r.topic, r.partition, r.offset))
    events: list[Event] = []
    owners: list[tuple[str, str, str]] = []
    for r in ordered:
        base = r.topic[len(prefix) :]
        try:
            ev = decode_event(base, r.value, s)
        except DecodeError:
            continue
        events.append(ev)
        owners.append((table_of(base), key_of(ev), ev.event_id))
    tables: dict[str, dict[str, Any]] = {t: {} for t in Engine.TABLES}
    for i in range(0, len(events), 512):
        res = engine.learn_many(events[i : i + 512])
        for name, kv in res.table_updates.items():
            for k, v in kv.items():
                if v is None:
                    tables[name].pop(k, None)
                else:
                    tables[name][k] = json.loads(json.dumps(v))  # what a table round trip gives
    return tables, engine.stats(), owners


def _norm(table: str, v: Any) -> Any:
    """Order-free form of a table value: only per-key order is promised across topics."""
    if not isinstance(v, dict):
        return v
    v = dict(v)
    v.pop("applied", None)  # offsets read, which the oracle (reading records its own way) has not
    if "ids" in v:
        v["ids"] = sorted(v["ids"])
    if table == "social":
        v["following"] = {k: t for k, t in v.get("following") or ()}
        v["unfollowed"] = {k: t for k, t in v.get("unfollowed") or ()}
    if table == "activity":
        v["seen"] = sorted(v.get("seen") or ())
        v["comments"] = sorted(tuple(c) for c in v.get("comments") or ())
        v["recent"] = {k: tuple(e) for k, e in (v.get("recent") or {}).items()}
    return v


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def compare(
    worker: dict[str, dict[str, Any]],
    oracle: dict[str, dict[str, Any]],
    owners: list[tuple[str, str, str]],
) -> dict[str, Any]:
    """Worker tables vs the oracle's: differing keys, lost event effects, doubled effects."""
    differing: list[str] = []
    for table in sorted(set(worker) | set(oracle)):
        w, o = worker.get(table, {}), oracle.get(table, {})
        for key in sorted(set(w) | set(o)):
            if not _close(_norm(table, w.get(key)), _norm(table, o.get(key))):
                differing.append(f"{table}/{key}")
    lost_by_key: dict[str, int] = {}
    lost: list[str] = []
    for table, key, eid in owners:
        # the ids a value keeps are a window (the last dedup_ids_per_key): an event past the oracle's
        # window too is checked by the value comparison above, not by its id
        ids_of = (oracle.get(table, {}).get(key) or {}).get("ids") or ()
        if eid in ids_of and eid not in set((worker.get(table, {}).get(key) or {}).get("ids") or ()):
            lost.append(eid)
            lost_by_key[f"{table}/{key}"] = lost_by_key.get(f"{table}/{key}", 0) + 1
    # Every event of the key is there, yet the value differs: an effect applied twice (or wrongly).
    doubled = sum(1 for k in differing if k not in lost_by_key)
    return {
        "keys": sum(len(t) for t in oracle.values()),
        "differing_keys": len(differing),
        "differing_examples": differing[:10],
        "first_difference": _first_difference(worker, oracle, differing[0]) if differing else None,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "lost_ids": lost,
        "doubled": doubled,
    }


def _first_difference(worker: dict[str, dict[str, Any]], oracle: dict[str, dict[str, Any]], where: str) -> Any:
    table, key = where.split("/", 1)
    w, o = _norm(table, worker.get(table, {}).get(key)), _norm(table, oracle.get(table, {}).get(key))
    if isinstance(w, dict) and isinstance(o, dict):
        return {f: {"worker": w.get(f), "oracle": o.get(f)} for f in sorted(set(w) | set(o)) if not _close(w.get(f), o.get(f))}
    return {"worker": w, "oracle": o}


async def _dead_lettered_reasons(rig: Rig, ids: set[str]) -> dict[str, int]:
    """Of these event ids, which were dead-lettered, by reason (a lost event's whereabouts)."""
    out: dict[str, int] = {}
    if not ids:
        return out
    for r in await rig.dead_letters():
        d = r.json() or {}
        try:
            eid = orjson.loads((d.get("payload") or "").encode()).get("event_id")
        except (ValueError, AttributeError):
            continue
        if eid in ids:
            out[d.get("reason", "?")] = out.get(d.get("reason", "?"), 0) + 1
    return out


async def _diagnose_loss(rig: Rig, lost_ids: set[str], records: list[Record]) -> dict[str, Any]:
    """What the next person needs when the oracle disagrees: where the lost events sat and what
    the group committed, the changelog's reported vs true ends, and the worker logs' paths."""
    committed = await rig.committed()
    where: dict[str, tuple[str, int, int]] = {}
    for r in records:
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            where[str(r.json()["event_id"])] = (r.topic, r.partition, r.offset)
    by_partition: dict[str, list[int]] = {}
    below_commit = 0
    for eid in sorted(lost_ids):
        topic, part, off = where.get(eid, ("?", -1, -1))
        by_partition.setdefault(f"{topic}/{part}", []).append(off)
        if off < committed.get((topic, part), 0):
            below_commit += 1
    return {
        "lost_offsets_by_partition": {k: v[:20] for k, v in sorted(by_partition.items())},
        "lost_below_committed_offset": below_commit,
        "committed": {f"{t}/{p}": o for (t, p), o in sorted(committed.items())},
        "changelog_now": await rig.changelog_cut(),
        "worker_logs": sorted(str(p) for p in rig.workdir.glob("worker-*.log")),
    }


async def converge(
    rig: Rig,
    oracle: dict[str, dict[str, Any]],
    owners: list[tuple[str, str, str]],
    timeout: float = 120.0,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Poll the worker's state until it equals the oracle (or ``timeout``): (verdict, last state)."""
    deadline = time.monotonic() + timeout
    verdict: dict[str, Any] = {"differing_keys": -1, "lost": -1, "doubled": -1, "error": "no state read"}
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = await asyncio.to_thread(rig.state)
        if state is not None:
            verdict = compare(state["tables"], oracle, owners)
            if verdict["differing_keys"] == 0 and verdict["lost"] == 0:
                break
        await asyncio.sleep(1.0)
    return verdict, state


async def duplicate_recommendations(rig: Rig) -> dict[str, int]:
    """Recommendations published, and how many repeat an earlier one's ``rec_id`` (the same answer to
    the same event for the same user, re-published by a replay after a crash: at-least-once output)."""
    seen: dict[str, int] = {}
    total = 0
    for r in await read_topics(rig.settings, [rig.topic("recommendations")]):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            rid = str(r.json()["rec_id"])
            seen[rid] = seen.get(rid, 0) + 1
            total += 1
    return {"recommendations": total, "duplicate_recommendations": sum(n - 1 for n in seen.values())}


# ----------------------------------------------------------------------------- scenarios
async def crash_scenario(
    rig: Rig,
    events: list[Event],
    *,
    kills: int,
    rate: float,
    seed: int = 0,
    oracle_model: Path | None = None,
    kill_after_s: tuple[float, float] = (0.5, 3.0),
    converge_timeout: float = 180.0,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """``kills`` SIGKILLs at random points while ``events`` stream in at ``rate``; then the oracle."""
    rng = random.Random(seed)
    await rig.ensure_topics()
    await asyncio.to_thread(rig.start)
    producer = asyncio.create_task(rig.produce(events, rate))
    recoveries: list[float] = []
    kill_points: list[float] = []
    cuts: list[dict[str, Any]] = []
    try:
        for k in range(kills):
            await asyncio.sleep(rng.uniform(*kill_after_s))
            before = events_done(await asyncio.to_thread(rig.metrics))
            t0 = time.monotonic()
            await asyncio.to_thread(rig.kill)
            kill_points.append(before)
            down = time.monotonic() - t0
            # With the worker dead, what its next recovery can read back (not timed as recovery).
            cut = await rig.changelog_cut()
            cuts.append(cut)
            t1 = time.monotonic()
            await asyncio.to_thread(rig.start)
            recoveries.append(down + time.monotonic() - t1)
            log(
                f"kill {k + 1}/{kills}: after {before:.0f} events of this process; ready again in "
                f"{recoveries[-1]:.1f}s; changelog state records past the reported end: "
                f"{cut['state_records_past_end']} {cut['examples'][:3]}; committed effects only there "
                f"(lost): {cut['committed_effects_past_end']} {cut['lost_examples'][:3]}"
            )
        await producer
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
    records = await rig.inputs()
    oracle, ostats, owners = await asyncio.to_thread(
        replay_oracle, records, rig.settings, oracle_model, rig.prefix
    )
    verdict, state = await converge(rig, oracle, owners, converge_timeout)
    engine_stats = (state or {}).get("engine") or {}
    lost_ids = set(verdict.pop("lost_ids", None) or ())
    diagnosis: dict[str, Any] = {}
    if lost_ids or verdict.get("differing_keys"):
        diagnosis = await _diagnose_loss(rig, lost_ids, records)
        log(f"crash scenario failed; diagnosis: {json.dumps(diagnosis, default=str)[:6000]}")
    return {
        **await duplicate_recommendations(rig),
        "lost_dead_lettered": await _dead_lettered_reasons(rig, lost_ids),
        "kills": kills,
        "events": len(records),
        "misplaced_changelog_keys": await rig.misplaced_changelog_keys(),
        "recovery_seconds": recoveries,
        "events_done_at_kill": kill_points,
        "changelog_cut_at_kill": [c["state_records_past_end"] for c in cuts],
        "recovery_misses_committed_at_kill": [c["committed_effects_past_end"] for c in cuts],
        "changelog_cut_examples": [c["examples"][:5] for c in cuts],
        "diagnosis": diagnosis,
        **verdict,
        "engine_matches_oracle": all(engine_stats.get(k) == ostats.get(k) for k in ("users", "items", "edges")),
        "engine": engine_stats,
        "oracle_engine": ostats,
    }


async def graceful_scenario(
    rig: Rig,
    events: list[Event],
    *,
    rate: float,
    seed: int = 0,
    oracle_model: Path | None = None,
    stop_after_s: tuple[float, float] = (2.0, 4.0),
    stop_timeout: float = 60.0,
    converge_timeout: float = 180.0,
) -> dict[str, Any]:
    """SIGTERM under load; the committed offsets vs what the changelog applied; restart; the oracle."""
    rng = random.Random(seed)
    await rig.ensure_topics()
    await asyncio.to_thread(rig.start)
    producer = asyncio.create_task(rig.produce(events, rate))
    await asyncio.sleep(rng.uniform(*stop_after_s))
    pid = rig.pid
    rc, stop_s = await asyncio.to_thread(rig.terminate, stop_timeout)
    # With the worker gone: what it committed, and what its changelog says it applied.
    committed = await rig.committed()
    applied_state = await rig.changelog()
    records = await rig.inputs()
    applied_beyond_commit = 0
    unapplied_below_commit = 0
    for r in records:
        base = r.topic[len(rig.prefix) :]
        try:
            v = r.json()
            key = v["item_id"] if base == "items" else v["user_id"]
            eid = v["event_id"]
        except (ValueError, KeyError, TypeError):
            continue
        ids = set((applied_state.get(table_of(base), {}).get(key) or {}).get("ids") or ())
        below = r.offset < committed.get((r.topic, r.partition), 0)
        if eid in ids and not below:
            applied_beyond_commit += 1
        elif below and eid not in ids:
            unapplied_below_commit += 1
    await asyncio.to_thread(rig.start)
    await producer
    records = await rig.inputs()
    oracle, _ostats, owners = await asyncio.to_thread(
        replay_oracle, records, rig.settings, oracle_model, rig.prefix
    )
    verdict, _state = await converge(rig, oracle, owners, converge_timeout)
    lost_ids = set(verdict.pop("lost_ids", None) or ())
    m = await asyncio.to_thread(rig.metrics)
    redelivered = sum(v for k, v in m.items() if k.startswith("socrec_events_total{") and 'outcome="duplicate"' in k)
    return {
        "pid": pid,
        "exit_code": rc,
        "stop_seconds": stop_s,
        "committed_partitions": len(committed),
        "applied_beyond_commit": applied_beyond_commit,
        "unapplied_below_commit": unapplied_below_commit,
        "redelivered_after_restart": redelivered,
        "lost_dead_lettered": await _dead_lettered_reasons(rig, lost_ids),
        "events": len(records),
        **verdict,
    }


def _rss_bytes(pid: int) -> int:
    """Resident memory of the worker and its children (an engine process counts too)."""
    import psutil

    try:
        p = psutil.Process(pid)
        total = int(p.memory_info().rss)
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += int(c.memory_info().rss)
        return total
    except psutil.Error:
        return 0


def load_stream(
    n_users: int, n_items: int, *, seed: int = 0, tag: str = "ld"
) -> tuple[list[Event], Iterator[Event]]:
    """(catalogue + graph bootstrap, an endless stream of interactions over the same bounded keys)."""
    rng = random.Random(seed)
    users = [f"{tag}u{i}" for i in range(n_users)]
    items = [f"{tag}i{j}" for j in range(n_items)]
    t = time.time()
    head: list[Event] = [ItemPublished(f"{tag}-item-{i}", i, t, _text(rng, 6)) for i in items]
    head += [
        Follow(f"{tag}-f-{k}", u, v, t)
        for k, (u, v) in enumerate((u, rng.choice(users)) for u in users for _ in range(3))
        if u != v
    ]

    def gen() -> Iterator[Event]:
        n = 0
        while True:
            n += 1
            u, i = rng.choice(users), rng.choice(items)
            r = rng.random()
            if r < 0.75:
                yield Click(f"{tag}-c-{n}", u, i, t, dwell_ms=rng.choice([None, 3000]))
            elif r < 0.95:
                yield Like(f"{tag}-l-{n}", u, i, t, undo=rng.random() < 0.2)
            else:
                yield Comment(f"{tag}-m-{n}", u, i, t, rng.choice(["love it", "meh", "terrible"]))

    return head, gen()


async def load_scenario(
    rig: Rig,
    *,
    rate: float,
    duration_s: float,
    users: int = 300,
    items: int = 500,
    seed: int = 0,
    warmup_frac: float = 0.25,
    drain_timeout: float = 120.0,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """``rate`` events/s for ``duration_s`` over bounded keys: lag, drain, RSS growth, latency."""
    from itertools import islice

    await rig.ensure_topics()
    await asyncio.to_thread(rig.start)
    pid = rig.pid or 0
    head, live = load_stream(users, items, seed=seed)
    boot = await rig.produce(head)
    deadline = time.monotonic() + drain_timeout
    while events_done(await asyncio.to_thread(rig.metrics)) < boot.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    sent_ts: dict[str, float] = {}
    latencies: list[float] = []
    sent_at: list[float] = []  # the event's ts of each latency, to split them into periods

    def on_rec(p: dict[str, Any], published: float) -> None:
        src = sent_ts.get(p.get("source_event_id") or "")
        if src is not None and p.get("kind") == "items":
            latencies.append(published - src)
            sent_at.append(src)

    watcher = OutputWatcher(rig.settings, on_rec)
    await watcher.start()
    n = int(rate * duration_s)
    samples: list[dict[str, float]] = []

    def on_sent(ev: Event) -> None:
        sent_ts[ev.event_id] = ev.ts

    producer = asyncio.create_task(rig.produce(islice(live, n), rate, on_sent=on_sent))
    t0 = time.monotonic()
    t0_wall = time.time()
    try:
        while not producer.done():
            m = await asyncio.to_thread(rig.metrics)
            samples.append({
                "t": time.monotonic() - t0,
                "lag": sum(v for k, v in m.items() if k.startswith("socrec_consumer_lag{")),
                "rss": float(_rss_bytes(pid)),
                "done": events_done(m),
            })  # fmt: skip
            if len(samples) % 15 == 0:
                s = samples[-1]
                log(f"load t={s['t']:.0f}s lag={s['lag']:.0f} rss={s['rss'] / 2**20:.0f}MiB done={s['done']:.0f}")
            await asyncio.sleep(1.0)
        stats = await producer
        produce_s = time.monotonic() - t0
        target = boot.sent + stats.sent
        t_stop = time.monotonic()
        drained_s: float | None = None
        while time.monotonic() - t_stop < drain_timeout:
            m = await asyncio.to_thread(rig.metrics)
            if events_done(m) >= target:
                drained_s = time.monotonic() - t_stop
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)
    finally:
        await watcher.stop()
        if not producer.done():
            producer.cancel()
    rss_end = float(_rss_bytes(pid))
    warm = [s for s in samples if s["t"] >= warmup_frac * duration_s]
    rss_warm = warm[0]["rss"] if warm else (samples[0]["rss"] if samples else rss_end)
    half = [s for s in samples if s["t"] >= duration_s / 2]
    return {
        "rate": rate,
        "duration_s": duration_s,
        "events": stats.sent,
        "achieved_rate": stats.sent / produce_s if produce_s > 0 else 0.0,
        "max_lag": max((s["lag"] for s in samples), default=0.0),
        "drained_seconds": drained_s,
        "rss_mib_after_warmup": rss_warm / 2**20,
        "rss_mib_end": rss_end / 2**20,
        "rss_growth_ratio": rss_end / rss_warm if rss_warm else None,
        # the second half alone: a leak keeps growing, a warm-up levels off
        "rss_growth_second_half": rss_end / half[0]["rss"] if half else None,
        "latency_ms": percentiles_ms(latencies),
        "latency_samples": len(latencies),
        "same_process": rig.worker is not None and rig.worker.alive() and rig.pid == pid,
        "by_period": _periods(samples, latencies, [t - t0_wall for t in sent_at], duration_s),
        "series": samples,
    }


def _periods(
    samples: list[dict[str, float]], latencies: list[float], sent_t: list[float], duration_s: float
) -> list[dict[str, Any]]:
    """The load split into up to 12 periods (>= 60 s): RSS at the end of each, its highest lag and its
    latency percentiles, so a long run shows whether memory levels off and latency drifts."""
    step = max(60.0, duration_s / 12)
    lat = np.asarray(latencies, dtype=np.float64)
    at = np.asarray(sent_t, dtype=np.float64)
    out = []
    start = 0.0
    while start < duration_s:
        end = min(start + step, duration_s)
        inside = [s for s in samples if start <= s["t"] < end]
        sel = lat[(at >= start) & (at < end)] if lat.size else lat
        out.append({
            "t_end_s": round(end, 1),
            "rss_mib": round(inside[-1]["rss"] / 2**20, 1) if inside else None,
            "max_lag": max((s["lag"] for s in inside), default=None),
            "latency_ms": percentiles_ms(sel),
            "latency_samples": int(sel.size),
        })  # fmt: skip
        start = end
    return out


# ----------------------------------------------------------------------------- the bench
def _tiny_model(workdir: Path) -> Path:
    from socrec_online.models.text import make_tiny_bert

    return Path(make_tiny_bert(workdir / "tiny_bert"))


async def _bench(
    *, kills: int, events: int, duration_s: float, rate: float, load_rate: float, bad: int,
    fuzz_seconds: int, workdir: Path, text_model: Path | None, log: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    oracle_model = _tiny_model(workdir)  # the oracle only needs tables, not embeddings
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    log("boundary cases through the service path, in process")
    bounds = await asyncio.to_thread(bench_hostile.run_boundaries, Settings(device="cpu"), oracle_model)
    fuzz: dict[str, Any] | None = None
    if fuzz_seconds > 0:
        log(f"fuzzing the service path for {fuzz_seconds} s")
        fuzz = await asyncio.to_thread(bench_hostile.run_fuzz, fuzz_seconds, workdir)
    kind = Settings().broker
    broker = make_broker(kind, data_dir=workdir / "kafka", log_path=workdir / "broker.log")
    result.update({"broker": broker.name, "broker_version": broker.version})
    with contextlib.closing(broker.start()):
        log(f"crash recovery: {kills} x kill -9 over {events} events at {rate:.0f}/s")
        crash_rig = Rig(broker.bootstrap, workdir / "crash", "crash.", text_model=text_model, broker_kind=kind)
        try:
            stream = make_stream(events, partitions=3, seed=1)
            crash = await crash_scenario(
                crash_rig, stream, kills=kills, rate=rate, seed=1, oracle_model=oracle_model,
                kill_after_s=(1.0, 8.0), log=log,
            )  # fmt: skip
        finally:
            await asyncio.to_thread(crash_rig.stop)
        log(f"poison: {bad} bad records")
        poison_rig = Rig(broker.bootstrap, workdir / "poison", "poison.", text_model=text_model, broker_kind=kind)
        try:
            good = answered_stream(max(200, bad // 5), seed=2, tag="pg")  # each answer checkable
            poison = await poison_scenario(poison_rig, good, bad, seed=2, timeout=600)
        finally:
            await asyncio.to_thread(poison_rig.stop)
        log(f"sustained load: {load_rate:.0f} events/s for {duration_s:.0f}s")
        load_rig = Rig(broker.bootstrap, workdir / "load", "load.", text_model=text_model, broker_kind=kind)
        try:
            load = await load_scenario(load_rig, rate=load_rate, duration_s=duration_s, log=log)
        finally:
            await asyncio.to_thread(load_rig.stop)
    rec = crash["recovery_seconds"]
    result.update({
        "kills": kills,
        "events": crash["events"],
        "lost": crash["lost"],
        "doubled": crash["doubled"],
        "recommendations": crash["recommendations"],
        "duplicate_recommendations": crash["duplicate_recommendations"],
        "differing_keys": crash["differing_keys"],
        "bad_inputs": poison["bad_inputs"],
        "dead_lettered": poison["dead_lettered"],
        "dead_letters_repeated": poison["dead_letters_repeated"],
        "good_answered": poison["good_answered"],
        "good_answerable": poison["good_answerable"],
        "agent_restarts": poison["agent_restarts"],
        "recovery_seconds_p95": round(float(percentiles(rec, (95,))["p95"]), 2) if rec else None,
        "rss_growth_ratio": round(load["rss_growth_ratio"], 3) if load["rss_growth_ratio"] else None,
        "crash": crash,
        "poison": poison,
        "load": {k: v for k, v in load.items() if k != "series"},
        "load_series": load["series"],
        "load_avg_end": os.getloadavg()[0],
        **bench_hostile.summary(bounds, fuzz, poison, load),
        "boundaries": bounds,
        "fuzz": fuzz,
    })  # fmt: skip
    return result


def run_bench(
    *,
    kills: int = 10,
    events: int = 20000,
    duration_s: float = 300.0,
    rate: float = 200.0,
    load_rate: float = 200.0,
    bad: int = 5000,
    fuzz_seconds: int = 60,
    tiny_model: bool = False,
    out: Path | None = None,
    plot: Path | None = None,
) -> int:
    """Run the long variants; write the DESIGN.md JSON keys to ``out`` and print a table."""
    workdir = Path(tempfile.mkdtemp(prefix="socrec-bench-rel-"))
    text_model = _tiny_model(workdir) if tiny_model else None

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    prev = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop children on SIGTERM too
    try:
        result = asyncio.run(
            _bench(
                kills=kills, events=events, duration_s=duration_s, rate=rate, load_rate=load_rate,
                bad=bad, fuzz_seconds=fuzz_seconds, workdir=workdir, text_model=text_model, log=log,
            )
        )
    except BaseException:
        print(f"bench failed; logs in {workdir}")
        raise
    finally:
        signal.signal(signal.SIGTERM, prev)
    result["text_model"] = "tiny random BERT" if tiny_model else "all-MiniLM-L6-v2"
    series = result.pop("load_series", [])
    if plot is not None:
        _plot(series, result, plot)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    _print_table(result)
    ok = result["lost"] == 0 and result["doubled"] == 0 and result["differing_keys"] == 0
    ok = ok and result["dead_lettered"] == result["bad_inputs"] and result["agent_restarts"] == 0
    ok = ok and result["dead_letters_repeated"] == 0 and result["good_answered"] == result["good_answerable"]
    ok = ok and bench_hostile.passed(result)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"worker logs kept in {workdir}")
    return 0 if ok else 1


def _plot(series: list[dict[str, float]], result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    ts = [s["t"] for s in series]
    a.plot(ts, [s["lag"] for s in series])
    a.set_xlabel("seconds")
    a.set_ylabel("consumer lag (events)")
    a.set_title(f"lag at {result['load']['rate']:.0f} events/s")
    b.plot(ts, [s["rss"] / 2**20 for s in series])
    b.set_xlabel("seconds")
    b.set_ylabel("worker RSS (MiB)")
    b.set_title(f"memory (growth after warm-up x{result.get('rss_growth_ratio')})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _print_table(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"socrec bench reliability ({r.get('text_model')}, {r.get('cpu_count')} CPUs)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("want", justify="right")
    t.add_row("kill -9 survived", str(r["kills"]), "")
    t.add_row("events in the stream", str(r["events"]), "")
    t.add_row("lost / doubled / differing keys", f"{r['lost']} / {r['doubled']} / {r['differing_keys']}", "0 / 0 / 0")
    t.add_row("recovery after kill -9, p95 s", str(r["recovery_seconds_p95"]), "")
    t.add_row("bad inputs / dead-lettered", f"{r['bad_inputs']} / {r['dead_lettered']}", "equal")
    t.add_row("dead letters repeated", str(r["dead_letters_repeated"]), "0")
    t.add_row("good events answered / answerable", f"{r['good_answered']} / {r['good_answerable']}", "equal")
    t.add_row("agent restarts", str(r["agent_restarts"]), "0")
    load = r["load"]
    t.add_row(
        f"load {load['rate']:.0f} ev/s for {load['duration_s']:.0f}s: max lag / drain s",
        f"{load['max_lag']:.0f} / {load['drained_seconds'] if load['drained_seconds'] is None else round(load['drained_seconds'], 2)}",
        "",
    )
    t.add_row("RSS growth after warm-up", str(r["rss_growth_ratio"]), "~1.0")
    for row in bench_hostile.table_rows(r):
        t.add_row(*row)
    lat = load.get("latency_ms") or {}
    t.add_row("latency ms p50/p95/p99", "/".join(str(lat.get(k)) for k in ("p50", "p95", "p99")), "")
    Console().print(t)


__all__ = [
    "Record",
    "Rig",
    "compare",
    "converge",
    "crash_scenario",
    "graceful_scenario",
    "load_scenario",
    "load_stream",
    "make_stream",
    "poison_records",
    "poison_scenario",
    "read_topics",
    "replay_oracle",
    "run_bench",
]

"""The replay oracle: a fresh engine fed every record read back from the source topics, and the
comparison of a worker's tables with it (differing keys, lost effects, doubled effects)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.rig import Record, Rig
from benchmarks.poison import table_of
from socrec_online.events import Event, key_of
from socrec_online.settings import Settings


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


__all__ = [
    "compare",
    "converge",
    "replay_oracle",
]

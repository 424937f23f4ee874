"""The kill loop: ``kill -9`` of the worker at random points while a stream is produced
(:func:`crash_scenario`), and SIGTERM under load (:func:`graceful_scenario`); both end with the
replay oracle: 0 differing keys, 0 lost, 0 doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.harness.oracle import converge, replay_oracle
from benchmarks.harness.rig import Record, Rig, read_topics
from benchmarks.poison import table_of
from socrec_online.events import Event
from streams.observe import events_done


async def dead_lettered_reasons(rig: Rig, ids: set[str]) -> dict[str, int]:
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
        "lost_dead_lettered": await dead_lettered_reasons(rig, lost_ids),
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
        "lost_dead_lettered": await dead_lettered_reasons(rig, lost_ids),
        "events": len(records),
        **verdict,
    }


__all__ = [
    "crash_scenario",
    "dead_lettered_reasons",
    "duplicate_recommendations",
    "graceful_scenario",
]

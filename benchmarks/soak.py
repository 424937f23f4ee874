"""``python -m benchmarks.soak``: does the engine's memory level off over a long live stream?

Why: a soak test through the embedded broker stops measuring the worker after ~10 minutes (the
broker's request cost grows with what it holds: docs/reliability.md, 'The embedded broker'). The engine process
holds the state that could grow, so this feeds the same bounded-key stream as
``socrec bench reliability``'s load phase (300 users, 500 items, clicks/likes/undos/comments) straight
into an in-process engine, in micro-batches, with a simulated clock at ``--rate`` events/s: hours of
a live stream in minutes. Prints a JSON line per ``--every`` events (resident memory of this process,
Python objects tracked by the GC) and a summary at the end.

``--distinct-users N`` runs the other soak instead: N users who each act a few times and never
come back, with retention on (``--no-retention``: the control), ``benchmarks/soak_distinct.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import psutil

from benchmarks.harness.streams import load_stream
from socrec_online.settings import Settings


def soak(
    events: int,
    *,
    batch: int,
    rate: float,
    every: int,
    text_model: Path | None,
    users: int,
    items: int,
    workdir: Path,
) -> dict[str, Any]:
    from socrec_online.service.engine import Engine, set_service_torch_threads

    # the zero-shot model, whatever snapshots the current directory holds
    settings = Settings(
        text_model_path=text_model, data_dir=workdir / "runs", snapshot_dir=workdir / "snapshots"
    )
    set_service_torch_threads(settings)
    engine = Engine.from_settings(settings)
    proc = psutil.Process()
    head, live = load_stream(users, items)
    t0 = time.time()
    for i in range(0, len(head), batch):
        engine.step(head[i : i + batch], now=t0)
    rows = []
    done = 0
    wall = time.monotonic()
    while done < events:
        chunk = list(islice(live, min(batch, events - done)))
        now = t0 + (done + len(chunk)) / rate  # the simulated clock: `rate` events a second
        chunk = [dataclasses.replace(ev, ts=now) for ev in chunk]
        engine.step(chunk, now=now)
        done += len(chunk)
        if done % every < batch or done == events:
            row = {
                "events": done,
                "simulated_minutes": round((now - t0) / 60, 1),
                "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                "gc_objects": len(gc.get_objects()),
                "wall_s": round(time.monotonic() - wall, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    warm = next((r for r in rows if r["events"] >= events // 4), rows[0])
    half = next((r for r in rows if r["events"] >= events // 2), rows[0])
    end = rows[-1]
    return {
        "events": events,
        "batch": batch,
        "rate": rate,
        "users": users,
        "items": items,
        "text_model": str(text_model) if text_model is not None else "all-MiniLM-L6-v2",
        "rss_mib_after_warmup": warm["rss_mib"],
        "rss_mib_end": end["rss_mib"],
        "rss_growth_ratio": round(end["rss_mib"] / warm["rss_mib"], 4),
        "rss_growth_second_half": round(end["rss_mib"] / half["rss_mib"], 4),
        "gc_objects_after_warmup": warm["gc_objects"],
        "gc_objects_end": end["gc_objects"],
        "events_per_s": round(events / max(end["wall_s"], 1e-9), 1),
        "series": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--events", type=int, default=360_000, help="events of the live stream (360,000 = 1 h at 100/s)"
    )
    p.add_argument("--batch", type=int, default=None, help="events per micro-batch (50; 2,000 with --distinct-users)")
    p.add_argument("--rate", type=float, default=100.0, help="events/s of the simulated clock")
    p.add_argument(
        "--distinct-users", type=int, default=0, help="the distinct-users soak: this many users, each new (0 = off)"
    )
    p.add_argument("--events-per-user", type=int, default=3, help="events of each distinct user")
    p.add_argument("--item-every", type=int, default=20, help="distinct-users soak: an item every this many events")
    p.add_argument("--user-ttl-s", type=float, default=600.0, help="distinct-users soak: user TTL, simulated seconds")
    p.add_argument("--no-retention", action="store_true", help="distinct-users soak: nothing evicted (the control)")
    p.add_argument("--every", type=int, default=20_000, help="a row every this many events")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--tiny-model", action="store_true", help="a tiny random text model instead of MiniLM")
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="socrec-soak-") as tmp:
        model = None
        if a.tiny_model:
            from socrec_online.models.text import make_tiny_bert

            model = Path(make_tiny_bert(Path(tmp) / "tiny_bert"))
        if a.distinct_users:
            from benchmarks.soak_distinct import soak_distinct

            r = soak_distinct(
                a.distinct_users,
                batch=a.batch or 2000,
                rate=a.rate,
                per_user=a.events_per_user,
                item_every=a.item_every,
                user_ttl_s=a.user_ttl_s,
                retention=not a.no_retention,
                text_model=model,
                workdir=Path(tmp),
            )
            _report(r, a.out)
            return
        r = soak(
            a.events,
            batch=a.batch or 50,
            rate=a.rate,
            every=a.every,
            text_model=model,
            users=a.users,
            items=a.items,
            workdir=Path(tmp),
        )
    _report(r, a.out)


def _report(r: dict[str, Any], out: Path | None) -> None:
    summary = {k: v for k, v in r.items() if k != "series"}
    print(json.dumps(summary, indent=2))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**r, "load_avg": os.getloadavg()[0]}, indent=2))


if __name__ == "__main__":
    main()

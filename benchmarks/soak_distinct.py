"""The distinct-users soak (``python -m benchmarks.soak --distinct-users N``): does memory level off
when every user is new?

The bounded-key soak (``benchmarks/soak.py``) shows the engine does not leak on a fixed key space;
this one feeds ``N`` users that each act a few times and never come back (a click or two, a like, one
in twenty also follows an earlier user), while items are published all along, on a simulated clock.
With retention on (``user_ttl_s``, ``item_retention_s``), the live users and items are bounded by
the TTLs, so resident memory must level off; with ``--no-retention`` (the control) it grows with
every user. Reports resident memory at a quarter, half and the end, its growth over the second
half, and the engine's live users and items against its rows.
"""

from __future__ import annotations

import gc
import json
import random
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from socrec_online.events import Click, Event, Follow, ItemPublished, Like
from socrec_online.settings import Settings

WORDS = ["cycling", "jazz", "baking", "astronomy", "gardening", "chess", "football", "poetry", "sushi", "hiking",
         "opera", "robotics", "painting", "surfing", "coffee", "history", "vinyl", "climbing", "knitting", "photo"]  # fmt: skip
FOLLOW_EVERY = 20
"""One user in this many also follows an earlier user (who may have been evicted: a follow target that never acted)."""


def stream(
    users: int, per_user: int, batch: int, rate: float, item_every: int, t0: float, seed: int = 0
) -> Iterator[tuple[float, int, list[Event]]]:
    """(simulated time, users so far, micro-batch): ``users`` distinct users, ``per_user`` events each, in order of
    arrival, an item published every ``item_every`` events; ``rate`` events per simulated second."""
    rng = random.Random(seed)
    recent: deque[str] = deque(maxlen=500)  # engagements go to recently published items (live ones)
    n_items = 0
    done = 0
    u = 0
    while u < users:
        now = t0 + done / rate
        out: list[Event] = []
        for _ in range(max(1, batch // item_every)):
            iid = f"i{n_items}"
            text = " ".join(rng.choice(WORDS) for _ in range(4))
            out.append(ItemPublished(f"p{n_items}", iid, now, text, author_id=f"author{n_items % 97}"))
            recent.append(iid)
            n_items += 1
        while len(out) < batch and u < users:
            uid = f"u{u}"
            for j in range(per_user):
                eid = f"e{u}.{j}"
                if j == per_user - 1 and j > 0:
                    out.append(Like(eid, uid, rng.choice(recent), now))
                else:
                    out.append(Click(eid, uid, rng.choice(recent), now, rng.choice([None, 800, 20_000])))
            if u % FOLLOW_EVERY == 0 and u > 0:
                out.append(Follow(f"f{u}", uid, f"u{rng.randrange(max(0, u - 50_000), u)}", now))
            u += 1
        done += len(out)
        yield now, u, out


def soak_distinct(
    users: int,
    *,
    batch: int,
    rate: float,
    per_user: int,
    item_every: int,
    user_ttl_s: float,
    retention: bool,
    text_model: Path | None,
    workdir: Path,
    rows: int = 40,
) -> dict[str, Any]:
    """Run the stream through an in-process engine; about ``rows`` rows of measurements along it."""
    from socrec_online.service.engine import Engine, set_service_torch_threads

    ttl = user_ttl_s if retention else 0.0
    # items live as long as users (item_ttl_s = item_retention_s = user_ttl_s): the catalogue and
    # the live users both level off after 2 x user_ttl_s of simulated time
    settings = Settings(
        text_model_path=text_model, data_dir=workdir / "runs", snapshot_dir=workdir / "snapshots",
        user_ttl_s=ttl, item_ttl_s=user_ttl_s, fresh_window_s=user_ttl_s / 2,
        item_retention_s=user_ttl_s if retention else 0.0, retention_sweep_s=60.0,
    )  # fmt: skip
    set_service_torch_threads(settings)
    engine = Engine.from_settings(settings)
    proc = psutil.Process()
    t0 = 1_700_000_000.0
    rows_every = max(1, round(users * per_user / batch / rows))
    series: list[dict[str, Any]] = []
    wall = time.monotonic()
    events = 0
    for i, (now, last, chunk) in enumerate(stream(users, per_user, batch, rate, item_every, t0)):
        engine.step(chunk, now=now)
        events += len(chunk)
        if i % rows_every == 0 or last >= users:
            st = engine.store
            row = {
                "users_seen": last,
                "events": events,
                "simulated_minutes": round((now - t0) / 60, 1),
                "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                "live_users": len(set(st.activity) | set(st.social)),
                "live_items": len(st.item_state),
                "user_rows": len(st.users),
                "item_rows": len(st.items),
                "ann_entries": int(engine.ann.entry_row.shape[0]),
                "gc_objects": len(gc.get_objects()),
                "wall_s": round(time.monotonic() - wall, 1),
            }
            print(json.dumps(row), flush=True)
            series.append(row)
    quarter = next(r for r in series if r["users_seen"] >= users // 4)
    half = next(r for r in series if r["users_seen"] >= users // 2)
    end = series[-1]
    return {
        "distinct_users": users,
        "events": events,
        "batch": batch,
        "rate": rate,
        "retention": retention,
        "user_ttl_s": ttl,
        "text_model": str(text_model) if text_model is not None else "all-MiniLM-L6-v2",
        "rss_mib_quarter": quarter["rss_mib"],
        "rss_mib_half": half["rss_mib"],
        "rss_mib_end": end["rss_mib"],
        "rss_growth_second_half": round(end["rss_mib"] / half["rss_mib"], 4),
        # the peaks, less sensitive to where in a compaction cycle the half and the end fall
        "rss_mib_peak_first_half": max(r["rss_mib"] for r in series if r["users_seen"] <= users // 2),
        "rss_mib_peak": max(r["rss_mib"] for r in series),
        "live_users_end": end["live_users"],
        "live_items_end": end["live_items"],
        "user_rows_end": end["user_rows"],
        "item_rows_end": end["item_rows"],
        "max_user_rows": max(r["user_rows"] for r in series),
        "events_per_s": round(events / max(end["wall_s"], 1e-9), 1),
        "series": series,
    }

"""What one worker's engine holds in memory per user and per item, measured, for capacity planning.

Replays synthetic datasets of growing size into a real serving engine (real text tower) and
reports the resident-memory growth; the marginal cost per user (with its interactions and
follows) and per item comes from the differences between sizes, so the fixed cost of the
process (torch, the model) cancels out.

    python -m benchmarks.memory --sizes 2000x2000,6000x2000,6000x6000 --out out/memory.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def measure(n_users: int, n_items: int, seed: int = 1) -> dict[str, Any]:
    """One size, in this process: RSS growth from an empty engine to the replayed dataset."""
    import psutil
    import torch
    from tqdm import tqdm

    from socrec_online.data.synthetic import SyntheticConfig, generate
    from socrec_online.service.engine import Engine
    from socrec_online.settings import Settings

    torch.set_num_threads(1)
    ds = generate(
        SyntheticConfig(n_users=n_users, n_items=n_items, interactions_per_user=30, follows_per_user=10, seed=seed)
    )
    events = list(ds.events())
    engine = Engine.from_settings(Settings(text_cache_size=0))  # the text cache is a separate, bounded cost
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    for start in tqdm(range(0, len(events), 1024), desc=f"{n_users}x{n_items}", leave=False):
        engine.learn_many(events[start : start + 1024])
    gc.collect()
    rss1 = psutil.Process().memory_info().rss
    return {
        "users": n_users,
        "items": n_items,
        "events": len(events),
        "edges": engine.n_edges,
        "rss_growth_bytes": rss1 - rss0,
    }


def run(sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Each size in a fresh process (no allocator state carried over); marginal costs from the runs."""
    rows = []
    for n_users, n_items in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--one", f"{n_users}x{n_items}"],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            cwd=Path(__file__).resolve().parents[1],  # the checkout: ``-m benchmarks.memory`` resolves there
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result: dict[str, Any] = {"runs": rows}
    by = {(r["users"], r["items"]): r for r in rows}
    users = sorted({u for u, _ in by})
    items = sorted({i for _, i in by})
    if len(users) > 1 and (users[-1], items[0]) in by and (users[0], items[0]) in by:
        a, b = by[(users[0], items[0])], by[(users[-1], items[0])]
        result["bytes_per_user"] = (b["rss_growth_bytes"] - a["rss_growth_bytes"]) / (b["users"] - a["users"])
        result["events_per_user"] = (b["events"] - a["events"]) / (b["users"] - a["users"])
    if len(items) > 1 and (users[-1], items[-1]) in by and (users[-1], items[0]) in by:
        a, b = by[(users[-1], items[0])], by[(users[-1], items[-1])]
        result["bytes_per_item"] = (b["rss_growth_bytes"] - a["rss_growth_bytes"]) / (b["items"] - a["items"])
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000x2000,6000x2000,6000x6000", help="USERSxITEMS,...")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.one:
        users, items = (int(x) for x in args.one.split("x"))
        print(json.dumps(measure(users, items)))
        return
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    result = run([(u, i) for u, i in sizes])
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

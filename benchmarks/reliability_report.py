"""What ``socrec bench reliability`` shows: the table of its figures and the lag/RSS plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import hostile


def plot(series: list[dict[str, float]], result: dict[str, Any], path: Path) -> None:
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


def print_table(r: dict[str, Any]) -> None:
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
    for row in hostile.table_rows(r):
        t.add_row(*row)
    lat = load.get("latency_ms") or {}
    t.add_row("latency ms p50/p95/p99", "/".join(str(lat.get(k)) for k in ("p50", "p95", "p99")), "")
    Console().print(t)


__all__ = [
    "plot",
    "print_table",
]

"""CPU of the processes a throughput run measures (worker, its engine process, the broker, the bench
itself), sampled as cumulative seconds and turned into cores per interval."""

from __future__ import annotations

import asyncio
import time

CPU_SAMPLE_S = 5.0
MIN_CPU_INTERVAL_S = 1.0


def cpu_seconds(pid: int | None, broker_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far of the worker process, of its children (the engine process) and of the
    broker: on a small machine they share the cores, so each one's cost per event is the figure to cut."""
    import psutil

    if pid is None:
        return {}
    try:
        proc = psutil.Process(pid)
        out = {"worker": sum(proc.cpu_times()[:2])}
        out["engine"] = sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
        if broker_pid is not None:
            out["broker"] = sum(psutil.Process(broker_pid).cpu_times()[:2])
    except psutil.Error:
        return {}
    return out


def cores_series(samples: list[tuple[float, dict[str, float]]]) -> list[dict[str, float]]:
    """Cumulative CPU samples -> cores used by each process in each interval ("t": its end, seconds
    after the first sample). Why a series: the embedded broker's share grows through a live run (a
    fetch that returns data costs it more the more record batches the partition holds), and a mean
    over the run hides that."""
    out: list[dict[str, float]] = []
    if not samples:
        return out
    t0, c0 = samples[0]
    for t1, c1 in samples[1:]:
        dt = t1 - t0
        if dt < MIN_CPU_INTERVAL_S:
            continue  # CPU times tick in 10 ms: a sliver of an interval (the last) reads as nonsense
        row = {"t": round(t1 - samples[0][0], 1)}
        row.update({k: round((c1[k] - c0[k]) / dt, 3) for k in c1 if k in c0})
        out.append(row)
        t0, c0 = t1, c1
    return out


def cpu_sample(pid: int | None, broker_pid: int | None) -> tuple[float, dict[str, float]]:
    """(now, cumulative CPU seconds of the worker, its engine, the broker and this process: the load
    generator and the recommendations consumer)."""
    import psutil

    cpu = cpu_seconds(pid, broker_pid)
    cpu["bench"] = sum(psutil.Process().cpu_times()[:2])
    return time.monotonic(), cpu


async def sample_cpu(
    pid: int | None, broker_pid: int | None, into: list[tuple[float, dict[str, float]]]
) -> None:
    while True:
        into.append(cpu_sample(pid, broker_pid))
        await asyncio.sleep(CPU_SAMPLE_S)


def cpu_all(pids: list[int | None], broker_pid: int | None) -> dict[str, float]:
    """cpu_seconds summed over the worker processes (the broker counted once)."""
    out: dict[str, float] = {}
    for i, pid in enumerate(pids):
        for k, v in cpu_seconds(pid, broker_pid if i == 0 else None).items():
            out[k] = out.get(k, 0.0) + v
    return out


__all__ = [
    "CPU_SAMPLE_S",
    "MIN_CPU_INTERVAL_S",
    "cores_series",
    "cpu_all",
    "cpu_sample",
    "cpu_seconds",
    "sample_cpu",
]

"""Benchmarks that run the service on a broker (throughput, reliability, recovery): registered on
the shared ``bench`` app. Each imports its bench module inside the command (one line)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from streams.cli._app import bench_app
from streams.cli.options import DeviceOpt, OutOpt, exit_with


@bench_app.command("reliability")
def bench_reliability_cmd(
    kills: Annotated[int, typer.Option("--kills", help="kill -9 of the worker in the crash phase.")] = 10,
    events: Annotated[int, typer.Option("--events", help="Events of the crash-recovery stream.")] = 20000,
    rate: Annotated[float, typer.Option("--rate", help="Events/s of the crash-recovery stream.")] = 200.0,
    duration_s: Annotated[
        float, typer.Option("--duration-s", help="Seconds of the sustained-load phase.")
    ] = 300.0,
    load_rate: Annotated[float, typer.Option("--load-rate", help="Events/s of the sustained load.")] = 200.0,
    bad: Annotated[int, typer.Option("--bad", help="Bad records of the poison phase.")] = 5000,
    fuzz_seconds: Annotated[
        int, typer.Option("--fuzz-seconds", help="Seconds of fuzzing the service path (0: none).")
    ] = 60,
    tiny_model: Annotated[
        bool, typer.Option("--tiny-model", help="A tiny random text model instead of MiniLM.")
    ] = False,
    out: OutOpt = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG: lag and RSS under load.")] = None,
) -> None:
    """kill -9 recovery vs a replay oracle, poison input, boundary and fuzz inputs, sustained load: lost, doubled, crashes, RSS."""
    from benchmarks.reliability import run_bench

    exit_with(
        lambda: run_bench(
            kills=kills,
            events=events,
            rate=rate,
            duration_s=duration_s,
            load_rate=load_rate,
            bad=bad,
            fuzz_seconds=fuzz_seconds,
            tiny_model=tiny_model,
            out=out,
            plot=plot,
        )
    )


@bench_app.command("recovery")
def bench_recovery_cmd(
    sizes: Annotated[
        str, typer.Option("--sizes", help="Changelog records per run, comma-separated.")
    ] = "10000,100000,1000000",
    minilm: Annotated[
        bool, typer.Option("--minilm", help="The MiniLM text model instead of a tiny random one.")
    ] = False,
    out: OutOpt = None,
) -> None:
    """Seconds until a worker serves again, first start and after kill -9, by changelog size."""
    from benchmarks.recovery import run_bench

    counts = [int(x) for x in sizes.split(",") if x.strip()]
    exit_with(lambda: run_bench(sizes=counts, tiny_model=not minilm, out=out))


@bench_app.command("throughput")
def bench_throughput_cmd(
    events: Annotated[int, typer.Option("--events", help="Backlog events of the throughput phases.")] = 20000,
    rate: Annotated[float, typer.Option("--rate", help="Events per second of the latency phase.")] = 500.0,
    latency_events: Annotated[
        int, typer.Option("--latency-events", help="Events of the latency phase.")
    ] = 10000,
    device: DeviceOpt = None,
    out: OutOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG: latency histogram and throughput over time.")
    ] = None,
    phases: Annotated[
        str,
        typer.Option(
            "--phases",
            help="Subset of the phases to run: passthrough, throughput, two-workers (the same backlog drained by "
            "two worker processes of one app), latency.",
        ),
    ] = "passthrough,throughput,latency",
    api: Annotated[
        bool, typer.Option("--api/--no-api", help="Latency phase: GET the read API meanwhile (api_get_*_ms).")
    ] = True,
    model: Annotated[
        Literal["zero-shot", "fused"],
        typer.Option("--model", help="zero-shot | fused (a fused snapshot trained first on the synthetic set)."),
    ] = "zero-shot",
    snapshot: Annotated[
        Path | None, typer.Option("--snapshot", help="Serve this snapshot (a snapshot directory or a directory of them).")
    ] = None,
) -> None:
    """Full pipeline vs pass-through events/s, latency p50/p95/p99 at --rate, item freshness, through
    the broker SOCREC_BROKER names."""
    from benchmarks.throughput import run_bench
    from socrec_online.settings import Settings

    chosen = device or Settings().device
    exit_with(
        lambda: run_bench(
            events=events,
            rate=rate,
            latency_events=latency_events,
            device=chosen,
            out=out,
            plot=plot,
            phases=phases.split(","),
            api=api,
            model=model,
            snapshot=snapshot,
        )
    )

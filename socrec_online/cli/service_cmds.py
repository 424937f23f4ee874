"""Service commands (broker, worker, replay, demo, bench throughput): registered on the shared apps.

``socrec_online`` never imports faust or aiokafka: the Kafka-touching commands are handed to
``python -m streams ...`` by exec (same process id, so signals and exit codes are the real
ones). ``socrec broker`` needs no Kafka client and runs here.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from socrec_online.cli._app import app, bench_app


def exec_streams(*args: str) -> None:
    """Replace this process by ``python -m streams ARGS`` (exits with its code)."""
    argv = [sys.executable, "-m", "streams", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def _opt(flag: str, value: object | None) -> list[str]:
    return [] if value is None else [flag, str(value)]


@app.command("broker")
def broker_cmd(
    port: Annotated[int, typer.Option("--port", help="Port on the host (0 = a free one).")] = 19092,
    host: Annotated[str, typer.Option("--host", help="Listen and advertise on this address.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Apache Kafka's log folder (kept across restarts); default SOCREC_KAFKA_DATA_DIR."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="kafka | embedded (default SOCREC_BROKER, i.e. kafka).")
    ] = None,
) -> None:
    """Run a single-node broker on this machine until Ctrl-C/SIGTERM: Apache Kafka (KRaft, data on
    disk) by default, or the embedded in-memory broker with --kind embedded."""
    from socrec_online.broker import BrokerError
    from socrec_online.brokers import make_broker
    from socrec_online.settings import Settings

    settings = Settings()
    which = kind or settings.broker
    if which not in ("kafka", "embedded"):
        typer.echo(f"--kind must be kafka or embedded, not {which!r}", err=True)
        raise typer.Exit(2)
    folder = (data_dir or settings.kafka_data_dir).resolve()
    stop = {"sig": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    broker = make_broker(which, host=host, port=port, data_dir=folder)  # type: ignore[arg-type]
    try:
        broker.start()
    except BrokerError as exc:
        typer.echo(f"broker did not start: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        where = f"data in {folder}" if which == "kafka" else "memory only"
        typer.echo(f"{broker.name} {broker.version} ready on {broker.bootstrap} ({where}; Ctrl-C stops it)")
        typer.echo(f"  export SOCREC_KAFKA_BOOTSTRAP={broker.bootstrap} SOCREC_BROKER={which}")
        while not stop["sig"] and broker.is_running():
            time.sleep(0.2)
        if not broker.is_running():
            typer.echo(f"broker exited unexpectedly; log tail:\n{broker.log_tail()}", err=True)
            raise typer.Exit(1)
    finally:
        broker.stop()
    typer.echo("broker stopped")


@app.command("worker")
def worker_cmd(
    device: Annotated[
        str | None, typer.Option("--device", help="auto | cpu | cuda (overrides SOCREC_DEVICE).")
    ] = None,
    passthrough: Annotated[
        bool, typer.Option("--passthrough", help="Decode and re-publish only (bench baseline).")
    ] = False,
    ready_file: Annotated[
        Path | None, typer.Option("--ready-file", help="Write this JSON file once ready.")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option("--loglevel", help="DEBUG | INFO | WARNING | ERROR (overrides SOCREC_LOG_LEVEL).")
    ] = None,
) -> None:
    """Run the stream worker against SOCREC_KAFKA_BOOTSTRAP (creates its topics when absent)."""
    args = ["worker", *_opt("--device", device), *_opt("--ready-file", ready_file), *_opt("--loglevel", loglevel)]
    if passthrough:
        args.append("--passthrough")
    exec_streams(*args)


@app.command("trainer")
def trainer_cmd(
    device: Annotated[
        str | None, typer.Option("--device", help="auto | cpu | cuda (overrides SOCREC_DEVICE).")
    ] = None,
    ready_file: Annotated[
        Path | None, typer.Option("--ready-file", help="Write this JSON file once consuming.")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option("--loglevel", help="DEBUG | INFO | WARNING | ERROR (overrides SOCREC_LOG_LEVEL).")
    ] = None,
) -> None:
    """Fine-tune from the live stream (own consumer group), publish gated snapshots, announce them."""
    args = ["trainer", *_opt("--device", device), *_opt("--ready-file", ready_file), *_opt("--loglevel", loglevel)]
    exec_streams(*args)


@app.command("replay")
def replay_cmd(
    dataset: Annotated[str, typer.Argument(help="synthetic | lastfm | files")],
    rate: Annotated[
        float, typer.Option("--rate", help="Interaction events per second (0 = unpaced).")
    ] = 500.0,
    events: Annotated[
        int | None, typer.Option("--events", help="Interaction events after the bootstrap (default all).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Dataset directory (lastfm, files).")
    ] = None,
    no_bootstrap: Annotated[
        bool, typer.Option("--no-bootstrap", help="Skip the catalogue/graph/profiles burst.")
    ] = False,
    dataset_ts: Annotated[
        bool, typer.Option("--dataset-ts", help="Keep dataset timestamps (default: wall clock).")
    ] = False,
) -> None:
    """Produce a dataset's events to SOCREC_KAFKA_BOOTSTRAP: catalogue, graph, profiles, then interactions."""
    args = ["replay", dataset, "--rate", str(rate), *_opt("--events", events), *_opt("--data-dir", data_dir)]
    if no_bootstrap:
        args.append("--no-bootstrap")
    if dataset_ts:
        args.append("--dataset-ts")
    exec_streams(*args)


@app.command("demo")
def demo_cmd(
    events: Annotated[
        int, typer.Option("--events", help="Interaction events replayed after the bootstrap.")
    ] = 6000,
    rate: Annotated[float, typer.Option("--rate", help="Interaction events per second.")] = 100.0,
    dataset: Annotated[str, typer.Option("--dataset", help="synthetic | lastfm | files")] = "synthetic",
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Dataset directory (lastfm, files).")
    ] = None,
    users: Annotated[
        int, typer.Option("--users", help="Users whose recommendations the live view shows.")
    ] = 5,
    no_live: Annotated[bool, typer.Option("--no-live", help="Log lines instead of the live view.")] = False,
    scale: Annotated[
        float, typer.Option("--scale", help="Synthetic dataset size factor (users and items).")
    ] = 1.0,
) -> None:
    """Embedded broker + worker + live replay, with a live view; exits cleanly after --events or Ctrl-C."""
    args = ["demo", "--events", str(events), "--rate", str(rate), "--dataset", dataset, "--users", str(users)]
    args += [*_opt("--data-dir", data_dir), "--scale", str(scale)]
    if no_live:
        args.append("--no-live")
    exec_streams(*args)


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
    out: Annotated[Path | None, typer.Option("--out", help="JSON output path.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG: lag and RSS under load.")] = None,
) -> None:
    """kill -9 recovery vs a replay oracle, poison input, boundary and fuzz inputs, sustained load: lost, doubled, crashes, RSS."""
    args = ["bench-reliability", "--kills", str(kills), "--events", str(events), "--rate", str(rate)]
    args += ["--duration-s", str(duration_s), "--load-rate", str(load_rate), "--bad", str(bad)]
    args += ["--fuzz-seconds", str(fuzz_seconds)]
    args += [*_opt("--out", out), *_opt("--plot", plot)]
    if tiny_model:
        args.append("--tiny-model")
    exec_streams(*args)


@bench_app.command("recovery")
def bench_recovery_cmd(
    sizes: Annotated[
        str, typer.Option("--sizes", help="Changelog records per run, comma-separated.")
    ] = "10000,100000,1000000",
    minilm: Annotated[
        bool, typer.Option("--minilm", help="The MiniLM text model instead of a tiny random one.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="JSON output path.")] = None,
) -> None:
    """Seconds until a worker serves again, first start and after kill -9, by changelog size."""
    args = ["bench-recovery", "--sizes", sizes, *_opt("--out", out)]
    if minilm:
        args.append("--minilm")
    exec_streams(*args)


@bench_app.command("throughput")
def bench_throughput_cmd(
    events: Annotated[int, typer.Option("--events", help="Backlog events of the throughput phases.")] = 20000,
    rate: Annotated[float, typer.Option("--rate", help="Events per second of the latency phase.")] = 500.0,
    latency_events: Annotated[
        int, typer.Option("--latency-events", help="Events of the latency phase.")
    ] = 10000,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="JSON output path.")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG: latency histogram and throughput over time.")
    ] = None,
    phases: str = typer.Option(
        "passthrough,throughput,latency",
        "--phases",
        help="Subset of the phases to run: passthrough, throughput, two-workers (the same backlog drained by "
        "two worker processes of one app), latency.",
    ),
    api: Annotated[
        bool, typer.Option("--api/--no-api", help="Latency phase: GET the read API meanwhile (api_get_*_ms).")
    ] = True,
    model: Annotated[
        str,
        typer.Option("--model", help="zero-shot | fused (a fused snapshot trained first on the synthetic set)."),
    ] = "zero-shot",
    snapshot: Annotated[
        Path | None, typer.Option("--snapshot", help="Serve this snapshot (a snapshot directory or a directory of them).")
    ] = None,
) -> None:
    """Full pipeline vs pass-through events/s, latency p50/p95/p99 at --rate, item freshness."""
    args = [
        "bench-throughput",
        "--events",
        str(events),
        "--rate",
        str(rate),
        "--latency-events",
        str(latency_events),
    ]
    args += ["--device", device, "--phases", phases, *_opt("--out", out), *_opt("--plot", plot)]
    args.append("--api" if api else "--no-api")
    args += ["--model", model, *_opt("--snapshot", snapshot)]
    exec_streams(*args)

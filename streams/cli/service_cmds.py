"""Service commands (broker, worker, trainer, replay, demo): registered on the shared app.

Each runs its function in this process (``socrec worker`` is the worker process: Faust's and the
trainer's signal handlers get SIGTERM/SIGINT, and their exit code is the command's), imported
inside the command so that ``socrec --help`` or ``socrec train`` never loads faust or aiokafka.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from socrec_online.broker_caps import BrokerKind
from streams.cli._app import app
from streams.cli.options import (
    BootstrapOpt,
    DataDirOpt,
    Dataset,
    DatasetOpt,
    DeviceOpt,
    LoglevelOpt,
    exit_with,
    settings_with,
)


@app.command("broker")
def broker_cmd(
    port: Annotated[int, typer.Option("--port", help="Port on the host (0 = a free one).")] = 19092,
    host: Annotated[str, typer.Option("--host", help="Listen and advertise on this address.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Apache Kafka's log folder (kept across restarts); default SOCREC_KAFKA_DATA_DIR."),
    ] = None,
    kind: Annotated[
        BrokerKind | None, typer.Option("--kind", help="kafka | embedded (default SOCREC_BROKER, i.e. kafka).")
    ] = None,
) -> None:
    """Run a single-node broker on this machine until Ctrl-C/SIGTERM: Apache Kafka (KRaft, data on
    disk) by default, or the embedded in-memory broker with --kind embedded."""
    from socrec_online.broker import BrokerError
    from socrec_online.brokers import make_broker
    from socrec_online.settings import Settings

    settings = Settings()
    which = kind or settings.broker
    folder = (data_dir or settings.kafka_data_dir).resolve()
    stop = {"sig": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    broker = make_broker(which, host=host, port=port, data_dir=folder)
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
    bootstrap: BootstrapOpt = None,
    device: DeviceOpt = None,
    passthrough: Annotated[
        bool, typer.Option("--passthrough", help="Decode and re-publish only (bench baseline).")
    ] = False,
    ready_file: Annotated[
        Path | None, typer.Option("--ready-file", help="Write this JSON file once ready.")
    ] = None,
    loglevel: LoglevelOpt = None,
) -> None:
    """Run the stream worker against SOCREC_KAFKA_BOOTSTRAP (creates its topics when absent) until
    SIGTERM/Ctrl-C. Exit codes: 2 topics do not fit, 3 Kafka unusable, 4 the read API cannot listen."""
    from streams.worker import run_worker

    settings = settings_with(bootstrap=bootstrap, device=device)
    level = loglevel.upper() if loglevel else None
    exit_with(lambda: run_worker(settings, passthrough=passthrough, ready_file=ready_file, loglevel=level))


@app.command("trainer")
def trainer_cmd(
    bootstrap: BootstrapOpt = None,
    device: DeviceOpt = None,
    ready_file: Annotated[
        Path | None, typer.Option("--ready-file", help="Write this JSON file once consuming.")
    ] = None,
    loglevel: LoglevelOpt = None,
) -> None:
    """Fine-tune from the live stream (own consumer group), publish gated snapshots, announce them."""
    from streams.trainer import run_trainer

    settings = settings_with(bootstrap=bootstrap, device=device)
    level = loglevel.upper() if loglevel else None
    exit_with(lambda: run_trainer(settings, ready_file=ready_file, loglevel=level))


@app.command("replay")
def replay_cmd(
    dataset: Annotated[Dataset, typer.Argument(help="Which dataset (lastfm and files read --data-dir).")],
    rate: Annotated[
        float, typer.Option("--rate", help="Interaction events per second (0 = unpaced).")
    ] = 500.0,
    events: Annotated[
        int | None, typer.Option("--events", help="Interaction events after the bootstrap (default all).")
    ] = None,
    data_dir: DataDirOpt = None,
    no_bootstrap: Annotated[
        bool, typer.Option("--no-bootstrap", help="Skip the catalogue/graph/profiles burst.")
    ] = False,
    dataset_ts: Annotated[
        bool, typer.Option("--dataset-ts", help="Keep dataset timestamps (default: wall clock).")
    ] = False,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Produce a dataset's events to SOCREC_KAFKA_BOOTSTRAP: catalogue, graph, profiles, then interactions."""
    import asyncio

    from streams.replay import replay

    settings = settings_with(bootstrap=bootstrap)

    def run() -> int:
        st = asyncio.run(
            replay(
                settings,
                dataset,
                data_dir=str(data_dir) if data_dir else None,
                events=events,
                rate=rate,
                bootstrap=not no_bootstrap,
                live_ts=not dataset_ts,
            )
        )
        typer.echo(f"sent {st.sent} events in {st.seconds:.1f}s ({st.rate:.0f} ev/s): {st.by_topic}")
        return 0

    exit_with(run)


@app.command("demo")
def demo_cmd(
    events: Annotated[
        int, typer.Option("--events", help="Interaction events replayed after the bootstrap.")
    ] = 6000,
    rate: Annotated[float, typer.Option("--rate", help="Interaction events per second.")] = 100.0,
    dataset: DatasetOpt = "synthetic",
    data_dir: DataDirOpt = None,
    users: Annotated[
        int, typer.Option("--users", help="Users whose recommendations the live view shows.")
    ] = 5,
    no_live: Annotated[bool, typer.Option("--no-live", help="Log lines instead of the live view.")] = False,
    scale: Annotated[
        float, typer.Option("--scale", help="Synthetic dataset size factor (users and items).")
    ] = 1.0,
) -> None:
    """Start a broker (SOCREC_BROKER: Apache Kafka by default, or the embedded one), a worker and a
    trainer, replay a dataset live and show what they do; exits cleanly after --events or Ctrl-C."""
    from streams.demo import run_demo

    exit_with(
        lambda: run_demo(
            events=events,
            rate=rate,
            dataset=dataset,
            data_dir=str(data_dir) if data_dir else None,
            users_shown=users,
            live=not no_live,
            scale=scale,
        )
    )

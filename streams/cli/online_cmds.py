"""``socrec bench online``: prequential quality with/without fine-tuning and reservoir, plus worker p99
with and without a fine-tuning trainer (``benchmarks.online_latency``: a broker, a worker and a trainer)."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from streams.cli._app import bench_app
from streams.cli.options import DataDirOpt, DatasetOpt, OutOpt


@bench_app.command("online")
def bench_online_cmd(
    dataset: DatasetOpt = "synthetic",
    data_dir: DataDirOpt = None,
    events: Annotated[
        int, typer.Option("--events", min=0, help="Interactions streamed (prequential part; 0 = skip it).")
    ] = 6000,
    finetune_every: Annotated[int, typer.Option("--finetune-every", help="Events between fine-tunes.")] = 1000,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps per fine-tune.")] = 30,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank on the text tower (0 = frozen).")] = 0,
    recent: Annotated[int, typer.Option("--recent", help="Replay window (interactions).")] = 2000,
    reservoir: Annotated[int, typer.Option("--reservoir", help="Reservoir of older interactions.")] = 4000,
    latency_events: Annotated[
        int, typer.Option("--latency-events", help="Events per latency phase (0 = skip the latency part).")
    ] = 2000,
    rate: Annotated[float, typer.Option("--rate", help="Events/s of the latency phases.")] = 100.0,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "cpu",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: OutOpt = None,
) -> None:
    """Fine-tuned vs frozen-at-first-snapshot vs no-reservoir (hit ratio, recall@10), snapshots
    published/rejected, and the worker's p99 idle vs during a fine-tune."""
    from benchmarks.online import OnlineBenchConfig, print_table, run_online_bench, write

    result: dict[str, object] = {}
    if events > 0:
        cfg = OnlineBenchConfig(
            dataset=dataset, data_dir=str(data_dir) if data_dir else None, events=events,
            finetune_every=finetune_every, steps=steps, lora_r=lora_r, recent_size=recent,
            reservoir_size=reservoir, seed=seed, device=device,
        )
        result = run_online_bench(cfg)
    if latency_events > 0:
        result.update(_latency(latency_events, rate, dataset, data_dir))
    write(result, out)
    print_table(result)
    if out is not None:
        typer.echo(f"wrote {out}")


def _latency(events: int, rate: float, dataset: str, data_dir: Path | None) -> dict[str, object]:
    """The worker's p99 idle vs during a fine-tune (``run_latency`` prints its JSON; the merged
    result is printed by the caller instead)."""
    from benchmarks.online_latency import run_latency

    with tempfile.TemporaryDirectory() as tmp:
        lat_out = Path(tmp) / "latency.json"
        with contextlib.redirect_stdout(io.StringIO()):
            code = run_latency(
                events=events, rate=rate, out=lat_out, dataset=dataset, data_dir=str(data_dir) if data_dir else None
            )
        if code != 0 or not lat_out.exists():
            typer.echo(f"latency part failed (exit {code})", err=True)
            raise typer.Exit(1)
        lat: dict[str, object] = json.loads(lat_out.read_text())
    return lat

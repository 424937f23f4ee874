"""``socrec bench online``: prequential quality with/without fine-tuning and reservoir, plus worker p99
with and without a fine-tuning trainer (that half runs in ``python -m streams bench-online``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from socrec_online.cli._app import bench_app


@bench_app.command("online")
def bench_online_cmd(
    dataset: Annotated[str, typer.Option("--dataset", help="synthetic | lastfm | files")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Dataset directory (lastfm, files).")] = None,
    events: Annotated[int, typer.Option("--events", help="Interactions streamed (prequential part).")] = 6000,
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
    out: Annotated[Path | None, typer.Option("--out", help="JSON output path.")] = None,
) -> None:
    """Fine-tuned vs frozen-at-first-snapshot vs no-reservoir (hit ratio, recall@10), snapshots
    published/rejected, and the worker's p99 idle vs during a fine-tune."""
    from socrec_online.bench.online import OnlineBenchConfig, print_table, run_online_bench, write

    cfg = OnlineBenchConfig(
        dataset=dataset, data_dir=str(data_dir) if data_dir else None, events=events,
        finetune_every=finetune_every, steps=steps, lora_r=lora_r, recent_size=recent,
        reservoir_size=reservoir, seed=seed, device=device,
    )
    result = run_online_bench(cfg)
    if latency_events > 0:
        with tempfile.TemporaryDirectory() as tmp:
            lat_out = Path(tmp) / "latency.json"
            cmd = [sys.executable, "-m", "streams", "bench-online", "--events", str(latency_events),
                   "--rate", str(rate), "--dataset", dataset, "--out", str(lat_out)]
            if data_dir:
                cmd += ["--data-dir", str(data_dir)]
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
            if done.returncode != 0 or not lat_out.exists():
                typer.echo(f"latency part failed (exit {done.returncode})", err=True)
                raise typer.Exit(1)
            lat = json.loads(lat_out.read_text())
        result.update(lat)
    write(result, out)
    print_table(result)
    if out is not None:
        typer.echo(f"wrote {out}")

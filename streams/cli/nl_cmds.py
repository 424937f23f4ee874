"""Natural-language benches (cold start, sentiment, queries): registered on the shared ``bench`` app."""

from __future__ import annotations

from pathlib import Path

import typer

from streams.cli._app import bench_app

_COLD_OUT = typer.Option(Path("out/coldstart.json"), "--out", help="Where the JSON goes.")
_SENTIMENT_OUT = typer.Option(Path("out/sentiment.json"), "--out", help="Where the JSON goes.")
_QUERIES_OUT = typer.Option(Path("out/queries.json"), "--out", help="Where the JSON goes.")


@bench_app.command("coldstart")
def bench_coldstart_cmd(
    dataset: str = typer.Option("synthetic", "--dataset", help="synthetic | lastfm | files"),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Dataset directory (lastfm: the HetRec files)."),
    seed: int = typer.Option(2020, "--seed", help="Seed of the dataset and of the cold users/items drawn."),
    users_per_group: int = typer.Option(50, "--users-per-group", help="Cold users drawn per case."),
    item_frac: float = typer.Option(0.1, "--item-frac", help="Share of items made cold."),
    cut: float = typer.Option(
        0.8, "--cut", help="Timed data: interaction-time quantile at which cold users arrive (1.0 = whole history)."
    ),
    out: Path = _COLD_OUT,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Recall@10 of the serving engine for cold users (profile / follows) and cold items vs popularity."""
    from benchmarks.coldstart import ColdStartConfig, print_table, run_coldstart, write_json

    cfg = ColdStartConfig(dataset, data_dir, seed, users_per_group, item_frac, cut)
    res = run_coldstart(cfg, progress=progress)
    write_json(res, out)
    print_table(res)
    typer.echo(f"wrote {out}")


@bench_app.command("sentiment")
def bench_sentiment_cmd(
    seeds: str = typer.Option(
        "2020,2021,2022", "--seeds",
        help="Synthetic seeds of the ranking ablation. The per-seed difference spreads by ~0.002-0.003: "
        "docs/quality.md's figures use 200 ($(seq -s, 2020 2219), ~8 min per 100 seeds and core).",
    ),
    comment_share: float = typer.Option(
        0.1, "--comment-share", help="Synthetic: share of engagements followed by a comment (generator default 0.1)."
    ),
    aversions: int = typer.Option(
        0, "--aversions", min=0, max=8,
        help="Synthetic: disliked words per user inside their favourite topic, learned from experience (0 = off).",
    ),
    ablation: bool = typer.Option(True, "--ablation/--no-ablation", help="Also run the ranking ablation."),
    trained: str = typer.Option(
        "", "--trained-models", help="Also train these (e.g. lightgcn,fused) on aware vs blind labels (minutes)."
    ),
    out: Path = _SENTIMENT_OUT,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Sentiment scorer accuracy on the hand-labelled sample, and aware vs blind comment weighting."""
    from benchmarks.sentiment import print_table, run_ablation, run_trained_ablation, write_json
    from benchmarks.sentiment_scorer import run_sentiment_eval

    res: dict[str, object] = {"scorer": run_sentiment_eval()}
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    synthetic: dict[str, object] = {"comment_share": comment_share}
    if aversions:
        synthetic["aversions"] = aversions
    if ablation:
        res["ablation"] = run_ablation(seed_list, progress=progress, synthetic=synthetic)
    models = [m.strip() for m in trained.split(",") if m.strip()]
    if models:
        res["trained"] = run_trained_ablation(seed_list, models, synthetic=synthetic, progress=progress)
    write_json(res, out)
    print_table(res)
    typer.echo(f"wrote {out}")


@bench_app.command("queries")
def bench_queries_cmd(
    seed: int = typer.Option(2020, "--seed", help="Seed of the synthetic dataset, of the askers drawn and of training."),
    askers: int = typer.Option(3, "--askers", min=1, help="Users asking each labelled query (histories in other topics)."),
    models: str = typer.Option("zero_shot,fused", "--models", help="zero_shot and/or fused (trained here, ~1 min)."),
    out: Path = _QUERIES_OUT,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """precision@3 of the queried topic for labelled queries asked by users whose history lies elsewhere."""
    from benchmarks.queries import QueriesConfig, print_table, run_queries, write_json

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    bad = set(names) - {"zero_shot", "fused"}
    if bad:
        raise typer.BadParameter(f"unknown models {sorted(bad)}; choose zero_shot, fused")
    res = run_queries(QueriesConfig(seed=seed, askers=askers, models=names), progress=progress)
    write_json(res, out)
    print_table(res)
    typer.echo(f"wrote {out}")

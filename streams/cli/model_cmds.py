"""Model commands (train, evaluate, bench quality): registered on the shared apps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from streams.cli._app import app, bench_app

_DATASET = typer.Option("synthetic", "--dataset", help="synthetic | lastfm | files")
_DATA_DIR = typer.Option(None, "--data-dir", help="Dataset directory (lastfm: HetRec files; files: your TSVs).")
_SPLIT_DIR = typer.Option(
    None, "--split-dir", help="Evaluate on an external split: train.tsv/valid.tsv/test.tsv (user_id<TAB>item_id, raw ids)."
)
_PROTOCOL = typer.Option("recbole", "--protocol", help="recbole (per-user random 8:1:1) | temporal (past -> next period)")
_SEED = typer.Option(2020, "--seed", help="Seed of the split and of training.")
_QUALITY_OUT = typer.Option(Path("out/quality.json"), "--out", help="Where the JSON goes.")
_PLOT = typer.Option(None, "--plot", help="Also draw a bar chart PNG here.")
_SNAPSHOT = typer.Option(None, "--snapshot", help="Evaluate this saved snapshot on the test split instead of training.")
_EVAL_OUT = typer.Option(None, "--out", help="Also write the metrics as JSON.")
_SNAPSHOT_DIR = typer.Option(None, "--snapshot-dir", help="Default: SOCREC_SNAPSHOT_DIR.")


AUTO_TAUS = (0.1, 0.2, 0.3)
_TAU = typer.Option(
    "auto", "--tau",
    help="Softmax temperature of the cosine score: a number, a comma-separated list, or auto "
    f"({','.join(map(str, AUTO_TAUS))}). With several, one model is trained per value and the one with the "
    "best valid NDCG@10 is kept; a fused model with a graph half picks its graph half's temperature as the "
    "GNN alone would, and its fused half's on that half alone (docs/architecture.md).",
)
AUTO_DIMS = (128, 256)
_DIM = typer.Option(
    "auto", "--dim",
    help="Embedding width: a number, a comma-separated list, or auto "
    f"({','.join(map(str, AUTO_DIMS))}). With several, the temperatures are tried at each width and the widths' "
    "picks are kept as one ensemble, weighted by the shares with the best valid NDCG@10.",
)
_EPOCHS = typer.Option(
    None, "--epochs",
    help="Upper bound on epochs (default: the trainer's, 400); training stops sooner when every part of the "
    "model has run out of patience on valid NDCG@10, or at --max-seconds.",
)
N = TypeVar("N", int, float)
_GRAPH_HALF = typer.Option(
    True, "--graph-half/--no-graph-half",
    help="fused: train a graph-only half beside the fused one and mix them by the share valid NDCG@10 picks.",
)


def _parse_grid(text: str, option: str, auto: tuple[N, ...], cast: Callable[[str], N], what: str) -> tuple[N, ...]:
    """``auto`` -> ``auto``; ``a`` or ``a,b`` -> those values cast (each > 0), or a usage error naming ``option``."""
    if text.strip().lower() == "auto":
        return auto
    try:
        values = tuple(cast(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise typer.BadParameter(f"{option} takes {what} or auto, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise typer.BadParameter(f"{option} values must be > 0, got {text!r}")
    return values


def parse_taus(text: str) -> tuple[float, ...]:
    """``auto`` -> the default grid; ``0.2`` or ``0.1,0.3`` -> those values (each > 0)."""
    return _parse_grid(text, "--tau", AUTO_TAUS, float, "numbers")


def parse_dims(text: str) -> tuple[int, ...]:
    """``auto`` -> the default widths; ``64`` or ``64,128`` -> those values (each > 0)."""
    return _parse_grid(text, "--dim", AUTO_DIMS, int, "whole numbers")


def _spec(
    epochs: int | None, dim: str, layers: int, tau: str, loss: str, lr: float, text_in_graph: bool,
    max_seconds: float, graph_half: bool = True,
) -> object:
    from socrec_online.eval.harness import ModelSpec
    from socrec_online.models.early_stop import MAX_EPOCHS

    taus, dims = parse_taus(tau), parse_dims(dim)
    return ModelSpec(
        dim=dims[0], dims=dims, n_layers=layers, tau=taus[0], taus=taus, loss=loss, epochs=epochs or MAX_EPOCHS, lr=lr,
        text_in_graph=text_in_graph, max_seconds=max_seconds, graph_half=graph_half,
    )


def _device() -> str:
    from socrec_online.devices import resolve_device
    from socrec_online.settings import get_settings

    return str(resolve_device(get_settings().device))


@bench_app.command("quality")
def bench_quality_cmd(
    dataset: str = _DATASET,
    data_dir: str | None = _DATA_DIR,
    protocol: str = _PROTOCOL,
    split_dir: str | None = _SPLIT_DIR,
    out: Path = _QUALITY_OUT,
    plot: Path | None = _PLOT,
    models: str = typer.Option(
        "popularity,river_mf,lightgcn,text_only,additive,fused", "--models", help="Comma-separated model names."
    ),
    seed: int = _SEED,
    epochs: int | None = _EPOCHS,
    dim: str = _DIM,
    layers: int = typer.Option(2, "--layers"),
    tau: str = _TAU,
    loss: str = typer.Option("softmax", "--loss", help="softmax | infonce | bce | bpr"),
    lr: float = typer.Option(5e-3, "--lr"),
    text_in_graph: bool = typer.Option(False, "--text-in-graph/--no-text-in-graph"),
    graph_half: bool = _GRAPH_HALF,
    max_seconds: float = typer.Option(540.0, "--max-seconds", help="Per-model training time budget."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Every model on the same split: Recall/NDCG/HR @10/@20, JSON + table (+ plot)."""
    from benchmarks.quality import plot as draw
    from socrec_online.eval.quality import print_table, run_quality, write_json

    names = [m.strip() for m in models.split(",") if m.strip()]
    spec = _spec(epochs, dim, layers, tau, loss, lr, text_in_graph, max_seconds, graph_half)
    res = run_quality(
        dataset, protocol, data_dir, split_dir, names, seed, spec, device=_device(), progress=progress  # type: ignore[arg-type]
    )
    write_json(res, out)
    print_table(res)
    if plot is not None:
        draw(res, plot)
    typer.echo(f"wrote {out}")


@app.command("evaluate")
def evaluate_cmd(
    dataset: str = _DATASET,
    data_dir: str | None = _DATA_DIR,
    protocol: str = _PROTOCOL,
    split_dir: str | None = _SPLIT_DIR,
    model: str = typer.Option("fused", "--model", help="popularity | river_mf | lightgcn | text_only | additive | fused"),
    snapshot: Path | None = _SNAPSHOT,
    seed: int = _SEED,
    epochs: int | None = _EPOCHS,
    tau: str = _TAU,
    dim: str = _DIM,
    out: Path | None = _EVAL_OUT,
) -> None:
    """Evaluate one model (trained here on the split's train part) or one snapshot."""
    from socrec_online.eval.quality import print_table, run_quality, write_json

    if snapshot is not None:
        res = _evaluate_snapshot(snapshot, dataset, data_dir, protocol, split_dir, seed)
    else:
        spec = _spec(epochs, dim, 2, tau, "softmax", 5e-3, False, 540.0)
        res = run_quality(dataset, protocol, data_dir, split_dir, [model], seed, spec, device=_device())  # type: ignore[arg-type]
    print_table(res)
    if out is not None:
        write_json(res, out)
        typer.echo(f"wrote {out}")


def _evaluate_snapshot(
    path: Path, dataset: str, data_dir: str | None, protocol: str, split_dir: str | None, seed: int
) -> dict[str, object]:
    """Score with a snapshot; only honest when the snapshot was trained on this split's train part."""
    import torch

    from socrec_online.data import load_dataset
    from socrec_online.eval.harness import make_split, test_metrics
    from socrec_online.models.gnn import build_graph
    from socrec_online.models.recommender import load_recommender
    from socrec_online.models.text_cache import cache_name, load_item_text
    from socrec_online.models.train import training_view

    model, uids, iids, manifest = load_recommender(path)
    ds = load_dataset(dataset, data_dir, seed=seed)
    split = make_split(ds, protocol, seed, split_dir)
    if uids != ds.users.all_ids or iids != ds.items.all_ids:
        raise typer.BadParameter("snapshot ids do not match the dataset's (trained on another dataset?)")
    item_text, _ = load_item_text(cache_name(dataset, data_dir), ds.item_text)
    view = training_view(ds, split.train, item_text, lambda t: load_item_text(cache_name(dataset, data_dir), t)[0])
    interest, pos = view.interest, view.positives
    graph = build_graph(
        ds.n_users, ds.n_items, pos.user, pos.item, pos.weight, ds.social_src, ds.social_dst, model.cfg.gnn(),
    )
    with torch.no_grad():
        uv, iv = model.full_vectors(graph if model.uses_graph else None, item_text, interest)
        m = test_metrics(lambda ub: model.score_many(uv[ub], iv), split)
    window = manifest.get("data_window") or {}
    if window.get("protocol") != protocol or window.get("seed") != seed:
        typer.echo(
            f"warning: snapshot data window {window} differs from this split; test items may be in its training data",
            err=True,
        )
    return {
        "dataset": dataset, "protocol": protocol, "seed": seed,
        "models": {f"snapshot:{manifest['version']}": {**m, "train_seconds": 0.0, "trained_offline": True}},
    }


@app.command("train")
def train_cmd(
    dataset: str = _DATASET,
    data_dir: str | None = _DATA_DIR,
    split_dir: str | None = _SPLIT_DIR,
    protocol: str = _PROTOCOL,
    snapshot_dir: Path | None = _SNAPSHOT_DIR,
    promote: bool = typer.Option(False, "--promote/--no-promote", help="Make the new snapshot CURRENT."),
    seed: int = _SEED,
    epochs: int | None = _EPOCHS,
    dim: str = _DIM,
    layers: int = typer.Option(2, "--layers"),
    tau: str = _TAU,
    loss: str = typer.Option("softmax", "--loss"),
    lr: float = typer.Option(5e-3, "--lr"),
    max_seconds: float = typer.Option(540.0, "--max-seconds"),
    graph_half: bool = _GRAPH_HALF,
) -> None:
    """Train the fused model (early stopping on the valid part of the split) and save a snapshot."""
    import torch

    from socrec_online.data import load_dataset
    from socrec_online.eval.harness import make_split, picks, select_width, test_metrics
    from socrec_online.models.early_stop import MAX_EPOCHS
    from socrec_online.models.recommender import RecommenderConfig, save_recommender
    from socrec_online.models.text_cache import cache_name, load_item_text
    from socrec_online.models.train import Fitted, TrainConfig, fit
    from socrec_online.settings import get_settings

    s = get_settings()
    ds = load_dataset(dataset, data_dir, seed=seed)
    split = make_split(ds, protocol, seed, split_dir)
    item_text, _ = load_item_text(cache_name(dataset, data_dir), ds.item_text)
    epochs = epochs or MAX_EPOCHS
    tcfg = TrainConfig(epochs=epochs, loss=loss, lr=lr, seed=seed, device=_device(), max_seconds=max_seconds)  # type: ignore[arg-type]

    def fit_at(t: float, width: int) -> Fitted:
        mcfg = RecommenderConfig(
            n_users=ds.n_users, n_items=ds.n_items, kind="fused", dim=width, text_dim=int(item_text.shape[1]),
            n_layers=layers, tau=t, graph_half=graph_half,
        )
        return fit(ds, split, mcfg, tcfg, item_text=item_text,
                   encode=lambda x: load_item_text(cache_name(dataset, data_dir), x)[0])

    fitted, by_tau, by_dim = select_width(fit_at, parse_taus(tau), parse_dims(dim), split)
    model = fitted.model.cpu()  # score and save on cpu whatever it trained on
    with torch.no_grad():
        uv, iv = model.full_vectors(fitted.graph, fitted.item_text.cpu(), fitted.interest.cpu())
        m = test_metrics(lambda ub: model.score_many(uv[ub], iv), split)
    metrics = m | {
        "valid_ndcg@10": fitted.result.best_valid.get("ndcg@10"),
        "train_seconds": fitted.result.seconds,
        "best_epoch": fitted.result.best_epoch,
    } | picks(fitted, by_tau, by_dim)
    root = snapshot_dir or s.snapshot_dir
    info = save_recommender(
        root, model, ds.users.all_ids, ds.items.all_ids, metrics,
        data_window={"dataset": dataset, "protocol": "split-dir" if split_dir else protocol, "seed": seed,
                     "train_pairs": len(split.train)},
        extra_config={"train": {"loss": loss, "epochs": epochs, "lr": lr, "seed": seed}},
    )
    if promote:
        from socrec_online.snapshot import promote as do_promote

        do_promote(Path(root), info.version)
    typer.echo(json.dumps({"version": info.version, "path": str(info.path), "metrics": metrics}, indent=2))

"""Every model on the same split: the figures, their JSON and rich table (``socrec evaluate`` and
``socrec bench quality``; the bench's plot is ``benchmarks/quality.py``)."""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from socrec_online.data import load_dataset
from socrec_online.eval.harness import MODELS, PUBLISHED_LASTFM, ModelSpec, make_split, run_model
from socrec_online.eval.paired import paired_difference
from socrec_online.models.text_cache import cache_name, load_item_text

log = logging.getLogger(__name__)

KEYS = ("recall@10", "ndcg@10", "hr@10", "recall@20", "ndcg@20")
REFERENCE = "lightgcn"
"""The model every other one is compared with, user by user, when it ran: the graph alone."""
AGAINST = f"against_{REFERENCE}"
"""The result's key for those comparisons: ``{model: {metric: {"diff", "se"}}}`` (``eval/paired.py``)."""


def run_quality(
    dataset: str,
    protocol: str = "recbole",
    data_dir: str | None = None,
    split_dir: str | None = None,
    models: Sequence[str] = MODELS,
    seed: int = 2020,
    spec: ModelSpec | None = None,
    device: str = "cpu",
    progress: bool = True,
    item_text: torch.Tensor | None = None,
) -> dict[str, Any]:
    spec = spec or ModelSpec()
    ds = load_dataset(dataset, data_dir, seed=seed)
    split = make_split(ds, protocol, seed, split_dir)
    text_secs = 0.0
    encode = None  # the users' own texts, by the tower that encoded the items
    if item_text is None and any(m in ("text_only", "additive", "fused") for m in models):
        item_text, text_secs = load_item_text(cache_name(dataset, data_dir),
                                              ds.item_text, progress)
        encode = lambda t: load_item_text(cache_name(dataset, data_dir), t, False)[0]
    out: dict[str, Any] = {
        "dataset": dataset,
        "protocol": "split-dir" if split_dir else protocol,
        "seed": seed,
        "models": {},
        "split": split.summary(),
        "dataset_summary": ds.summary(),
        "text_encode_seconds": text_secs,
        "spec": {k: v for k, v in vars(spec).items()},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version()},
        "masking": "test ranks all items with the user's train+valid items masked (RecBole cumulative used_ids)",
    }
    if dataset == "lastfm" and protocol == "recbole" and not split_dir:
        out["published_recbole_gnn"] = PUBLISHED_LASTFM
    per_user = {}
    for name in models:
        res, per_user[name] = run_model(name, ds, split, item_text, spec, seed=seed, device=device,
                                        progress=progress, encode=encode)
        out["models"][name] = res
        log.info(
            "%s: recall@10 %.4f ndcg@10 %.4f hr@10 %.4f (train %.1f s)",
            name, res["recall@10"], res["ndcg@10"], res["hr@10"], res["train_seconds"],
        )
    if REFERENCE in per_user:
        out[AGAINST] = {name: paired_difference(pu, per_user[REFERENCE])
                        for name, pu in per_user.items() if name != REFERENCE}
    return out


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"quality: {result['dataset']} / {result['protocol']} (seed {result['seed']})")
    t.add_column("model")
    for k in KEYS:
        t.add_column(k, justify="right")
    t.add_column("train s", justify="right")
    t.add_column("chosen on valid")
    for name, m in result["models"].items():
        t.add_row(name, *(f"{m[k]:.4f}" for k in KEYS), f"{m['train_seconds']:.1f}", chosen_on_valid(m))
    for name, m in result.get("published_recbole_gnn", {}).items():
        t.add_row(f"[dim]{name} (published)[/dim]", f"{m['recall@10']:.4f}", f"{m['ndcg@10']:.4f}", f"{m['hr@10']:.4f}",
                  "", "", "", "")
    t.caption = against_reference(result)
    Console().print(t)


def against_reference(result: dict[str, Any]) -> str | None:
    """One line per model: its paired difference from the reference on the same test users,
    mean +- one standard error (``eval/paired.py``)."""
    rows = [f"{name} - {REFERENCE}: " + ", ".join(f"{k} {d['diff']:+.4f} +- {d['se']:.4f}" for k, d in diff.items())
            for name, diff in result.get(AGAINST, {}).items()]
    return "\n".join(rows + ["(per test user, mean +- 1 SE)"]) if rows else None


def chosen_on_valid(m: dict[str, Any]) -> str:
    """What validation picked for a trained model: its temperature, the text half's share, the widths'
    shares (a composed model's fused and graph parts'), the popularity term's weight."""
    parts = []
    if "tau" in m:
        graph = f" (graph half {m['graph_tau']:g})" if m.get("graph_tau", m["tau"]) != m["tau"] else ""
        parts.append(f"tau {m['tau']:g}{graph}")
    if "text_mix" in m:
        parts.append(f"text mix {m['text_mix']:g}")
    if "text_gain" in m:
        parts.append(f"text's valid gain {m['text_gain']['diff']:+.4f} +- {m['text_gain']['se']:.4f}")
    for key, name in (("width_shares", "widths"), ("graph_width_shares", "graph widths")):
        if key in m:
            parts.append(f"{name} " + " + ".join(f"{b:g}x{w}" for w, b in m[key].items() if b > 0))
    if m.get("pop_prior"):
        parts.append(f"popularity {m['pop_prior']:+g}")
    return ", ".join(parts)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2, default=str))


__all__ = ["AGAINST", "KEYS", "REFERENCE", "against_reference", "chosen_on_valid", "print_table", "run_quality", "write_json"]

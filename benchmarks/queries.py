"""``socrec bench queries``: are queries answered by their words, whoever asks?

Protocol. The whole synthetic dataset (items, follows, profiles, interactions, comments) is
replayed into a real :class:`Engine`. Each query of the labelled set (``data/queries.tsv``: a
topic, a style, and words; "easy" shares words with the topic's items, "paraphrase" does not)
is asked by ``askers`` users drawn at random among those whose history lies in other topics:
their strongest topic is another one and they do not enjoy the queried topic (the generator's
``LIKE_THRESHOLD``). precision@3 = the share of the answer's top 3 whose topic is the queried
one, averaged over (query, asker) pairs. Models: ``zero_shot`` (no snapshot) and ``fused`` (a
fused model trained here on the dataset's RecBole train split, then served by the same engine).

``words_only`` ranks by the query's cosine alone (the asker ignored): the ceiling the words allow.
``history_reordered`` is the share of answers whose top 3 differ in order or content from
``words_only``: history at work within the matches.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from benchmarks.engine_eval import (
    WIDE_TTL_S,
    Replay,
    bench_settings,
    events_of,
    make_encoder,
    replay,
    save_encoder_cache,
)
from socrec_online.events import Query

QUERIES_PATH = Path(__file__).resolve().parent / "data" / "queries.tsv"
K = 3


@dataclass
class QueriesConfig:
    seed: int = 2020
    askers: int = 3  # users asking each query
    epochs: int = 30  # fused model training epochs (early stopping may end sooner)
    max_seconds: float = 120.0  # fused model training budget
    models: tuple[str, ...] = ("zero_shot", "fused")


def load_queries(path: str | Path = QUERIES_PATH) -> list[tuple[str, str, str]]:
    """(topic, style, text) rows; lines starting with # are comments."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            topic, style, text = line.split("\t")
            rows.append((topic, style, text))
    return rows


def askers_for(ds: Any, topic: int, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` users with interactions whose history lies in other topics than ``topic``."""
    from socrec_online.data.synthetic import LIKE_THRESHOLD

    theta = ds.meta["theta"]
    active = np.unique(ds.interactions.user)
    ok = active[(theta[active].argmax(1) != topic) & (theta[active, topic] <= LIKE_THRESHOLD)]
    return [ds.users.id(int(u)) for u in rng.choice(ok, size=min(n, ok.size), replace=False)]


def train_fused(ds: Any, cfg: QueriesConfig, item_text: torch.Tensor, root: Path) -> tuple[Path, dict[str, Any]]:
    """A fused snapshot trained on the RecBole train split: its directory and how training went."""
    from socrec_online.eval.harness import make_split
    from socrec_online.models.recommender import RecommenderConfig, save_recommender
    from socrec_online.models.train import TrainConfig, fit

    split = make_split(ds, "recbole", cfg.seed)
    mcfg = RecommenderConfig(n_users=ds.n_users, n_items=ds.n_items, kind="fused", dim=64,
                             text_dim=int(item_text.shape[1]), graph_half=True)  # `socrec train`'s model at one width and tau
    tcfg = TrainConfig(epochs=cfg.epochs, seed=cfg.seed, max_seconds=cfg.max_seconds, progress=False)
    fitted = fit(ds, split, mcfg, tcfg, item_text=item_text)
    res = fitted.result
    train = {"valid_ndcg@10": res.best_valid.get("ndcg@10"), "epochs_run": res.epochs_run, "stopped": res.stopped,
             "text_mix": fitted.model.cfg.text_mix}
    info = save_recommender(root, fitted.model.cpu(), ds.users.all_ids, ds.items.all_ids, train)
    return Path(info.path), train


def _precision(top: list[list[str]], topics: list[str], topic_of: dict[str, str]) -> list[float]:
    return [sum(topic_of.get(i) == t for i in row[:K]) / K for row, t in zip(top, topics, strict=True)]


def _summary(prec: list[float], styles: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"precision_at_3": round(float(np.mean(prec)), 4)}
    for st in sorted(set(styles)):
        out[f"precision_at_3_{st}"] = round(float(np.mean([p for p, s in zip(prec, styles, strict=True) if s == st])), 4)
    return out


def run_queries(cfg: QueriesConfig, progress: bool = True) -> dict[str, Any]:
    """Replay, ask every (query, asker) pair with each model, score precision@3."""
    from socrec_online.data import load_dataset
    from socrec_online.service.engine import Engine
    from socrec_online.service.fused import FusedScorer

    t0 = time.perf_counter()
    ds = load_dataset("synthetic", seed=cfg.seed)
    names: list[str] = list(cast(list[str], ds.meta["topics"]))
    item_topic = cast(np.ndarray, ds.meta["item_topic"])
    topic_of = {ds.items.id(i): names[int(t)] for i, t in enumerate(item_topic.tolist())}
    rng = np.random.default_rng(cfg.seed)
    labelled = load_queries()
    asks: list[Query] = []
    topics: list[str] = []
    styles: list[str] = []
    for qi, (topic, style, text) in enumerate(labelled):
        for u in askers_for(ds, names.index(topic), cfg.askers, rng):
            asks.append(Query(f"bench-q-{qi}-{u}", u, 0.0, text))
            topics.append(topic)
            styles.append(style)
    s = bench_settings(top_k=K, who_to_follow_k=0, item_ttl_s=WIDE_TTL_S, fanout_max_users=0)
    enc = make_encoder(s, "synthetic")
    eng = Engine(s, enc)
    rp = Replay(ds.interactions, ds.comments, None, dict(ds.profiles))
    rstats = replay(eng, events_of(ds, rp), progress=progress, desc="queries: replay")
    save_encoder_cache(enc, "synthetic")
    now = float(eng.clock)
    # the words alone: cosine of each query to every item, no asker
    words = torch.nn.functional.normalize(enc.encode([q.text for q in asks]).float(), dim=1)
    items = torch.nn.functional.normalize(enc.encode(ds.item_text).float(), dim=1)
    ranked = (words @ items.T).topk(K, dim=1).indices.tolist()
    words_top = [[ds.items.id(i) for i in row] for row in ranked]
    result: dict[str, Any] = {
        "bench": "queries",
        "dataset": "synthetic",
        "seed": cfg.seed,
        "k": K,
        "n_queries": len(labelled),
        "n_asks": len(asks),
        "protocol": (__doc__ or "").split("Protocol.", 1)[-1].strip(),
        "config": asdict(cfg),
        "words_only": _summary(_precision(words_top, topics, topic_of), styles),
        "models": {},
        "replay": rstats,
        "engine_settings": {n: getattr(s, n) for n in ("query_match_band", "query_history_weight", "query_match_floor",
                                                        "zs_weight_text", "zs_weight_social", "zs_weight_popularity")},
    }
    for model in cfg.models:
        t1 = time.perf_counter()
        extra: dict[str, Any] = {}
        if model == "fused":
            root = Path(tempfile.mkdtemp(prefix="socrec-bench-queries-"))
            snap, extra["training"] = train_fused(ds, cfg, items, root)
            eng.swap_model(FusedScorer.load(snap, enc), snap.name)
            extra["train_seconds"] = round(time.perf_counter() - t1, 1)
        answers = eng.answer_queries(asks, now=now)
        top = [[e["id"] for e in a["items"]] for a in answers]
        row = _summary(_precision(top, topics, topic_of), styles)
        row["history_reordered"] = round(float(np.mean([a != w for a, w in zip(top, words_top, strict=True)])), 4)
        row["model_version"] = answers[0]["model_version"] if answers else eng.model_version
        result["models"][model] = row | extra | {"seconds": round(time.perf_counter() - t1, 1)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"queries: {result['n_queries']} labelled queries, {result['n_asks']} asks, precision@3")
    for c in ("model", "all", "easy", "paraphrase", "history reordered"):
        t.add_column(c, justify="left" if c == "model" else "right")
    rows = [("words only", result["words_only"])] + list(result["models"].items())
    for name, r in rows:
        t.add_row(name, f"{r['precision_at_3']:.4f}", f"{r.get('precision_at_3_easy', 0):.4f}",
                  f"{r.get('precision_at_3_paraphrase', 0):.4f}",
                  "-" if "history_reordered" not in r else f"{r['history_reordered']:.4f}")
    Console(width=120).print(t)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2, default=str))

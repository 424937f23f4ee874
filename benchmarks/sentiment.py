"""``socrec bench sentiment``: how good the comment sentiment scorer is, and what it does to ranking.

1. Scorer accuracy on the hand-labelled ``data/sentiment_sample.tsv``: :mod:`benchmarks.sentiment_scorer`.
2. Ranking ablation on the synthetic benchmark, with the serving engine: replay everything
   before the temporal test cut (items, follows, profiles, clicks, likes, comments) into one
   engine with ``sentiment_weighting=true`` and one with ``false`` (every comment counts
   positive: |sentiment|), then Recall@10 on each user's first-time engagements after the cut.
   Two more readings: ``paired@10`` counts the targets only one arm found where their top-10
   lists differ (Recall means hide how few hits sentiment moves), and ``oracle`` is an engine
   that never sees an engagement its user did not enjoy: the best that DROPPING bad engagements
   can do. Not a ceiling for every use: it never sees the negative comments either, so it cannot
   lower a panned item's neighbours (with aspect aversions the aware engine beats it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.engine_eval import (
    Replay,
    bench_settings,
    engine_rankings,
    events_of,
    history_of,
    make_encoder,
    popularity_rankings,
    replay,
    save_encoder_cache,
    score_rankings,
    targets_of,
)


def run_ablation(
    seeds: Sequence[int] = (2020, 2021, 2022),
    encoder: Any | None = None,
    progress: bool = True,
    synthetic: dict[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Sentiment-aware vs sentiment-blind engine on the synthetic temporal split, per seed and mean."""
    from socrec_online.data import load_dataset
    from socrec_online.eval.splits import temporal_split
    from socrec_online.service.engine import Engine

    t0 = time.perf_counter()
    base = {"top_k": 20, "who_to_follow_k": 0, "fanout_max_users": 0} | settings
    s_aware = bench_settings(**(base | {"sentiment_weighting": True}))
    s_blind = bench_settings(**(base | {"sentiment_weighting": False}))
    s_oracle = bench_settings(**(base | {"sentiment_weighting": True, "top_k": 2 * base["top_k"]}))
    enc = encoder if encoder is not None else make_encoder(s_aware, "synthetic")
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        ds = load_dataset("synthetic", seed=seed, **(synthetic or {}))
        split = temporal_split(ds.stream, ds.n_users, ds.n_items)
        t_cut = float(split.meta["t_test"])  # type: ignore[arg-type]
        st = ds.stream
        past = st.ts < t_cut
        published = ds.item_ts <= t_cut if ds.item_ts is not None else np.ones(ds.n_items, bool)
        comments = [c for c in ds.comments if c.ts < t_cut]
        rp = Replay(st.subset(past), comments, None, dict(ds.profiles), published)
        test = split.test.subset(published[split.test.item])
        targets = targets_of(ds, test)
        enjoys = ds.meta.get("enjoys")
        enjoyed: dict[str, set[str]] = {}
        if isinstance(enjoys, np.ndarray):
            # the generator's own notion of "liked it" (the comment sentiment follows it too)
            enjoyed = targets_of(ds, test.subset(enjoys[test.user, test.item]))
        users = sorted(targets)
        events = events_of(ds, rp)
        row: dict[str, Any] = {
            "t_cut": t_cut,
            "comments_replayed": len(comments),
            "negative_comments_replayed": int(sum((c.sentiment_truth or 0) < 0 for c in comments)),
        }
        arms: dict[str, dict[str, list[str]]] = {}
        for name, s in (("aware", s_aware), ("blind", s_blind)):
            eng = Engine(s, enc)
            row[f"replay_{name}"] = replay(eng, events, progress=progress, desc=f"seed {seed} {name}")
            ranked = arms[name] = engine_rankings(eng, users, now=t_cut)
            row[name] = score_rankings(ranked, targets)
            if enjoyed:
                row[f"{name}_enjoyed"] = score_rankings(ranked, enjoyed)
        row["paired@10"] = paired_difference(arms["aware"], arms["blind"], targets, enjoyed)
        if isinstance(enjoys, np.ndarray):
            row["oracle"], row["oracle_enjoyed"] = _oracle(ds, rp, enjoys, s_oracle, enc, users, targets, enjoyed,
                                                           t_cut, progress, seed)
        hist = history_of(ds, rp.inter)
        counts = np.bincount(rp.inter.item, minlength=ds.n_items).astype(np.float64)
        pop = popularity_rankings(counts, ds.items.all_ids, users, hist, 20, published)
        row["popularity"] = score_rankings(pop, targets)
        row["delta_recall@10"] = round(row["aware"]["recall@10"] - row["blind"]["recall@10"], 6)
        per_seed[str(seed)] = row
    if encoder is None:
        save_encoder_cache(enc, "synthetic")

    def mean(key: str, metric: str) -> float | None:
        vals = [r[key][metric] for r in per_seed.values() if key in r]
        return round(float(np.mean(vals)), 6) if vals else None

    summary = {
        k: {m: mean(k, m) for m in ("recall@10", "ndcg@10", "recall@20")}
        for k in ("aware", "blind", "oracle", "popularity", "aware_enjoyed", "blind_enjoyed", "oracle_enjoyed")
    }
    deltas = [r["delta_recall@10"] for r in per_seed.values()]
    paired: dict[str, Any] = {key: int(sum(r["paired@10"][key] for r in per_seed.values())) for key in
                              next(iter(per_seed.values()))["paired@10"]} if per_seed else {}
    if paired:
        paired["sign_test_z"] = sign_test_z(paired["hits_only_aware"], paired["hits_only_blind"])
    return {
        "bench": "sentiment_ablation",
        "dataset": "synthetic",
        "synthetic": dict(synthetic or {}),
        "protocol": "temporal (train < 80% quantile of time < valid < 90% < test); engine replay of "
        "everything before the test cut; targets = first-time engagements after it",
        "seeds": list(seeds),
        "per_seed": per_seed,
        "mean": summary,
        "aware_minus_blind_recall@10": difference_summary(deltas),
        "paired@10": paired,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _oracle(
    ds: Any, rp: Replay, enjoys: np.ndarray, settings: Any, enc: Any, users: Sequence[str],
    targets: dict[str, set[str]], enjoyed: dict[str, set[str]], t_cut: float, progress: bool, seed: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """What dropping bad engagements can do at best: an engine that never sees one its user did not
    enjoy (the generator's ground truth, commented or not; so no negative comment either). Its
    rankings are cut to what the others may show (the user's whole history masked)."""
    from socrec_online.service.engine import Engine

    inter = rp.inter.subset(enjoys[rp.inter.user, rp.inter.item])
    clean = Replay(inter, [c for c in rp.comments if enjoys[c.user, c.item]], rp.follow_mask, rp.profiles,
                   rp.item_mask)
    eng = Engine(settings, enc)
    replay(eng, events_of(ds, clean), progress=progress, desc=f"seed {seed} oracle")
    hist = history_of(ds, rp.inter)
    k = settings.top_k // 2
    ranked = {u: [i for i in r if i not in hist.get(u, ())][:k]
              for u, r in engine_rankings(eng, users, now=t_cut).items()}
    return score_rankings(ranked, targets), score_rankings(ranked, enjoyed) if enjoyed else {}


def difference_summary(deltas: Sequence[float]) -> dict[str, Any]:
    """Mean aware - blind over seeds with its standard error: the per-seed spread (s.d. ~0.002-0.003
    on the default generator) is larger than the effects measured, so a mean alone misleads."""
    d = np.asarray(deltas, np.float64)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
    return {"mean": round(float(d.mean()), 6) if len(d) else None, "se": None if se is None else round(se, 6),
            "per_seed": list(deltas), "seeds_aware_higher": int((d > 0).sum())}


def sign_test_z(only_a: int, only_b: int) -> float | None:
    """Normal approximation of the sign test on the hits only one arm found (None without any)."""
    n = only_a + only_b
    return round((only_a - only_b) / float(np.sqrt(n)), 2) if n else None


def paired_difference(
    a: dict[str, list[str]], b: dict[str, list[str]], targets: dict[str, set[str]],
    enjoyed: dict[str, set[str]] | None = None, k: int = 10,
) -> dict[str, int]:
    """Where two arms' top-k lists differ, the targets only one of them found. Two Recall means hide
    how few lists sentiment changes; this paired count says it (hits won vs lost, a sign test)."""
    out = {"users": 0, "users_differing": 0, "slots_differing": 0, "hits_only_aware": 0, "hits_only_blind": 0,
           "enjoyed_hits_only_aware": 0, "enjoyed_hits_only_blind": 0}
    for u, t in targets.items():
        if not t:
            continue
        sa, sb = set(a.get(u, ())[:k]), set(b.get(u, ())[:k])
        out["users"] += 1
        only_a, only_b = sa - sb, sb - sa
        if not only_a and not only_b:
            continue
        out["users_differing"] += 1
        out["slots_differing"] += len(only_a)
        out["hits_only_aware"] += len(only_a & t)
        out["hits_only_blind"] += len(only_b & t)
        e = (enjoyed or {}).get(u, set())
        out["enjoyed_hits_only_aware"] += len(only_a & e)
        out["enjoyed_hits_only_blind"] += len(only_b & e)
    return out


def _test_with_original_mask(
    fitted: Any, split: Any, device: str, heldout: Any | None = None
) -> dict[str, float]:
    """Test metrics masking the ORIGINAL train + valid pairs, so both arms rank the same candidates."""
    from socrec_online.eval.metrics import evaluate_full_ranking

    m = fitted.model
    uv, iv = m.full_vectors(fitted.graph, fitted.item_text.to(device), fitted.interest.to(device))
    return evaluate_full_ranking(
        lambda ub: m.score_many(uv[ub], iv), split.n_users, split.n_items, (split.train, split.valid),
        split.test if heldout is None else heldout, device=device,
    )


def run_trained_ablation(
    seeds: Sequence[int] = (2020, 2021, 2022),
    models: Sequence[str] = ("lightgcn",),
    synthetic: dict[str, Any] | None = None,
    epochs: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """The same ablation for trained models: training positives with vs without the pairs the user
    panned in a comment (data/labels.py), same temporal split, same test mask (train + valid)."""
    import dataclasses

    import torch

    from socrec_online.data import load_dataset
    from socrec_online.data.labels import sentiment_labels
    from socrec_online.devices import resolve_device
    from socrec_online.eval.harness import KIND_OF, ModelSpec
    from socrec_online.eval.splits import temporal_split
    from socrec_online.models.recommender import RecommenderConfig
    from socrec_online.models.train import ServingRules, TrainConfig, fit
    from socrec_online.service.engine import vader_sentiment
    from socrec_online.settings import get_settings

    t0 = time.perf_counter()
    score = vader_sentiment()
    device = str(resolve_device(get_settings().device))
    spec = ModelSpec(epochs=epochs)
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        ds = load_dataset("synthetic", seed=seed, **(synthetic or {}))
        split = temporal_split(ds.stream, ds.n_users, ds.n_items)
        t_valid = float(split.meta["t_valid"])  # type: ignore[arg-type]
        comments = [c for c in ds.comments if c.ts < t_valid]  # only what training may see
        enjoys = ds.meta.get("enjoys")
        enjoyed = None
        if isinstance(enjoys, np.ndarray):
            enjoyed = split.test.subset(enjoys[split.test.user, split.test.item])
        item_text = None
        if any(KIND_OF[m] != "gnn" for m in models):
            from socrec_online.models.text_cache import load_item_text

            item_text, _ = load_item_text("synthetic", ds.item_text, progress)
        row: dict[str, Any] = {}
        for name in models:
            kind = KIND_OF[name]
            for arm, aware in (("aware", True), ("blind", False)):
                train = sentiment_labels(split.train, comments, score, aware)
                sp = dataclasses.replace(split, train=train)
                mcfg = RecommenderConfig(
                    n_users=ds.n_users, n_items=ds.n_items, kind=kind,  # type: ignore[arg-type]
                    dim=spec.dim, text_dim=int(item_text.shape[1]) if item_text is not None else 384,
                    n_layers=spec.n_layers, tau=spec.tau,
                )
                tcfg = TrainConfig(epochs=spec.epochs, lr=spec.lr, seed=seed, device=device, progress=progress,
                                   max_seconds=spec.max_seconds)
                rules = dataclasses.replace(ServingRules.from_settings(), sentiment_weighting=aware)
                fitted = fit(ds, sp, mcfg, tcfg, item_text=item_text if kind != "gnn" else None, rules=rules)
                with torch.no_grad():
                    met = _test_with_original_mask(fitted, split, device)
                    enj = _test_with_original_mask(fitted, split, device, enjoyed) if enjoyed is not None else {}
                row[f"{name}_{arm}"] = {k: round(v, 6) for k, v in met.items()}
                row[f"{name}_{arm}"]["train_pairs"] = len(train)
                if enj:
                    row[f"{name}_{arm}"]["enjoyed_recall@10"] = round(enj["recall@10"], 6)
            row[f"{name}_delta_recall@10"] = round(
                row[f"{name}_aware"]["recall@10"] - row[f"{name}_blind"]["recall@10"], 6
            )
        per_seed[str(seed)] = row
    summary = {
        name: {
            arm: round(float(np.mean([r[f"{name}_{arm}"]["recall@10"] for r in per_seed.values()])), 6)
            for arm in ("aware", "blind")
        }
        | {"seeds_aware_higher": int(sum(r[f"{name}_delta_recall@10"] > 0 for r in per_seed.values()))}
        for name in models
    }
    return {"per_seed": per_seed, "mean_recall@10": summary, "seconds": round(time.perf_counter() - t0, 1)}


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=140)
    sc = result["scorer"]
    t = Table(title=f"sentiment scorer on {sc['n']} hand-labelled comments ({sc['sample']})")
    for c in ("measure", "value"):
        t.add_column(c)
    t.add_row("3-class accuracy", f"{sc['accuracy']:.3f}")
    t.add_row("3-class macro-F1", f"{sc['macro_f1']:.3f}")
    t.add_row(f"polar accuracy (n={sc['polar']['n']})", f"{sc['polar']['accuracy']:.3f}")
    t.add_row("polar macro-F1", f"{sc['polar']['macro_f1']:.3f}")
    for c, w in sc["engine_comment_weight"].items():
        t.add_row(f"engine weight of a {c} comment", f"mean {w['mean']:+.2f}, below 0: {w['share_below_zero']:.0%}")
    con.print(t)
    ab = result.get("ablation")
    if ab:
        _print_ablation(con, ab)
    tr = result.get("trained")
    if tr:
        t = Table(title="sentiment ablation, trained models: training labels aware vs blind (Recall@10)")
        for c in ("seed", "model", "aware", "blind", "aware - blind"):
            t.add_column(c, justify="right")
        for seed, r in tr["per_seed"].items():
            for name in tr["mean_recall@10"]:
                t.add_row(seed, name, f"{r[f'{name}_aware']['recall@10']:.4f}",
                          f"{r[f'{name}_blind']['recall@10']:.4f}", f"{r[f'{name}_delta_recall@10']:+.4f}")
        con.print(t)


def _print_ablation(con: Any, ab: dict[str, Any]) -> None:
    from rich.table import Table

    gen = ", ".join(f"{k}={v}" for k, v in (ab.get("synthetic") or {}).items())
    t = Table(title=f"sentiment ablation: synthetic ({gen or 'defaults'}), temporal, serving engine (Recall@10 / NDCG@10)")
    for c in ("seed", "aware", "blind", "aware - blind", "oracle", "popularity", "aware (enjoyed)", "blind (enjoyed)",
              "oracle (enjoyed)"):
        t.add_column(c, justify="right")
    for seed, r in ab["per_seed"].items():
        t.add_row(
            seed,
            f"{r['aware']['recall@10']:.4f} / {r['aware']['ndcg@10']:.4f}",
            f"{r['blind']['recall@10']:.4f} / {r['blind']['ndcg@10']:.4f}",
            f"{r['delta_recall@10']:+.4f}",
            f"{r.get('oracle', {}).get('recall@10', float('nan')):.4f}",
            f"{r['popularity']['recall@10']:.4f}",
            f"{r.get('aware_enjoyed', {}).get('recall@10', float('nan')):.4f}",
            f"{r.get('blind_enjoyed', {}).get('recall@10', float('nan')):.4f}",
            f"{r.get('oracle_enjoyed', {}).get('recall@10', float('nan')):.4f}",
        )
    m = ab["mean"]
    t.add_row(
        "mean",
        f"{m['aware']['recall@10']:.4f} / {m['aware']['ndcg@10']:.4f}",
        f"{m['blind']['recall@10']:.4f} / {m['blind']['ndcg@10']:.4f}",
        _delta_cell(ab["aware_minus_blind_recall@10"]),
        f"{(m.get('oracle', {}).get('recall@10') or float('nan')):.4f}",
        f"{m['popularity']['recall@10']:.4f}",
        f"{(m['aware_enjoyed']['recall@10'] or float('nan')):.4f}",
        f"{(m['blind_enjoyed']['recall@10'] or float('nan')):.4f}",
        f"{(m.get('oracle_enjoyed', {}).get('recall@10') or float('nan')):.4f}",
    )
    con.print(t)
    p = ab.get("paired@10")
    if p:
        con.print(
            f"top-10 lists that differ: {p['users_differing']} of {p['users']} users, {p['slots_differing']} slots; "
            f"targets found only by aware {p['hits_only_aware']} vs only by blind {p['hits_only_blind']} "
            f"(sign test z = {p.get('sign_test_z')}; enjoyed {p['enjoyed_hits_only_aware']} vs "
            f"{p['enjoyed_hits_only_blind']})"
        )


def _delta_cell(d: dict[str, Any]) -> str:
    se = d.get("se")
    return f"{d['mean']:+.4f}" + (f" ± {se:.4f}" if se is not None else "")


def write_json(result: dict[str, Any], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2, default=str))

"""``socrec bench coldstart``: Recall@10 of the serving engine for users and items with no history.

Protocol (one seeded engine replay per dataset). Cold users are drawn at random among users
with interactions, in disjoint groups:

- ``cold_users_profile``: a declared-interest profile, no follows, no interactions (synthetic only);
- ``cold_users_profile_follows``: profile and follows, no interactions (synthetic only);
- ``cold_users_follows``: follows only, no profile, no interactions;

and a random ``item_frac`` of the items with interactions become cold items (``cold_items``:
published with their text, every interaction with them withheld). Every other event of the
dataset is replayed into a real :class:`Engine` (zero-shot, the model a fresh deployment
serves). Each cold user's target is every item they interacted with; a warm user's cold-item
target is the cold items they interacted with, ranked against all items they have not seen.
The popularity fallback ranks by interaction count over exactly the replayed interactions,
with each user's replayed history masked. LastFM has no declared-interest text, and a profile
derived from a user's own tags would be their history, so its profile rows are not measured.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.engine_eval import (
    KS,
    WIDE_TTL_S,
    Replay,
    bench_settings,
    engine_rankings,
    events_of,
    history_of,
    make_encoder,
    popularity_rankings,
    ratio,
    recent_popularity,
    replay,
    restricted_engine,
    save_encoder_cache,
    score_rankings,
    targets_of,
)
from socrec_online.data import load_dataset
from socrec_online.data.base import Dataset, Interactions

GROUPS = (
    "cold_users_profile",
    "cold_users_profile_follows",
    "cold_users_follows",
    "cold_items",
    "cold_items_among_cold",
)


@dataclass
class ColdStartConfig:
    dataset: str = "synthetic"
    data_dir: str | None = None
    seed: int = 2020
    users_per_group: int = 50
    item_frac: float = 0.1
    cut: float = 0.8  # timed data: interaction-time quantile where cold users arrive (1.0 = untimed protocol)
    new_items: bool = True  # timed data: cold items = the newest published before the cut (else a random draw)
    synthetic: dict[str, int] = field(default_factory=dict)  # generator overrides (tests use a small one)


@dataclass
class ColdSplit:
    """Which rows are withheld; everything else is replayed."""

    groups: dict[str, np.ndarray]  # group -> user rows
    cold_items: np.ndarray  # item rows
    replay: Replay
    heldout: Interactions  # withheld interactions that are targets
    t_cut: float | None = None  # timed data: the engine is asked at this time


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    pool = np.sort(pool)
    return np.sort(rng.choice(pool, size=min(n, pool.size), replace=False)) if pool.size else pool


def interactions_of(ds: Dataset) -> tuple[Interactions, float | None]:
    """The interaction stream to replay and, for untimed data, the one time to give it."""
    st = ds.stream if len(ds.stream) and float(np.max(ds.stream.ts)) > 0 else ds.interactions
    if len(st) and float(np.max(st.ts)) > 0:
        return st, None
    t = float(np.max(ds.item_ts)) + 86400.0 if ds.item_ts is not None and len(ds.item_ts) else 1_700_000_000.0
    return ds.interactions, t


def cold_split(ds: Dataset, cfg: ColdStartConfig) -> ColdSplit:
    rng = np.random.default_rng(cfg.seed)
    inter, t_untimed = interactions_of(ds)
    timed = t_untimed is None and cfg.cut < 1.0
    t_cut = float(np.quantile(inter.ts, cfg.cut)) if timed else None
    past = inter.ts < t_cut if t_cut is not None else np.ones(len(inter), bool)
    published = (
        ds.item_ts <= t_cut if t_cut is not None and ds.item_ts is not None else np.ones(ds.n_items, bool)
    )
    # a target must be recommendable at the cut: published by then
    future = ~past & published[inter.item] if t_cut is not None else np.ones(len(inter), bool)
    active = np.unique(inter.user[future])
    prof = np.asarray(sorted(ds.profiles), np.int64)
    fol = np.unique(ds.social_src)
    n = cfg.users_per_group
    groups: dict[str, np.ndarray] = {}
    with_prof = np.intersect1d(active, prof)
    groups["cold_users_profile"] = _pick(rng, with_prof, n)
    rest = np.setdiff1d(np.intersect1d(with_prof, fol), groups["cold_users_profile"])
    groups["cold_users_profile_follows"] = _pick(rng, rest, n)
    taken = np.concatenate([groups["cold_users_profile"], groups["cold_users_profile_follows"]])
    no_prof = np.setdiff1d(np.intersect1d(active, fol), np.concatenate([prof, taken]))
    groups["cold_users_follows"] = _pick(rng, no_prof, n)
    cold_users = np.concatenate(list(groups.values()))
    pool = np.intersect1d(np.unique(inter.item[future]), np.flatnonzero(published))
    n_cold = round(cfg.item_frac * pool.size)
    if cfg.new_items and t_cut is not None and ds.item_ts is not None:
        # timed data: the items nobody has touched yet are the newest ones (published last before the cut)
        cold_items = np.sort(pool[np.argsort(-ds.item_ts[pool], kind="stable")[:n_cold]])
    else:
        cold_items = _pick(rng, pool, n_cold)
    cold = np.isin(inter.user, cold_users) | np.isin(inter.item, cold_items)
    cu, ci = set(cold_users.tolist()), set(cold_items.tolist())
    comments = [
        c for c in ds.comments if c.user not in cu and c.item not in ci and (t_cut is None or c.ts < t_cut)
    ]
    follow_mask = ~np.isin(ds.social_src, groups["cold_users_profile"])
    drop_prof = set(groups["cold_users_follows"].tolist())
    profiles = {u: t for u, t in ds.profiles.items() if u not in drop_prof}
    rp = Replay(
        inter.subset(past & ~cold), comments, follow_mask, profiles,
        published if t_cut is not None else None, t_untimed,
    )
    return ColdSplit(groups, cold_items, rp, inter.subset(future & cold), t_cut)


def run_coldstart(
    cfg: ColdStartConfig, encoder: Any | None = None, progress: bool = True, **settings: Any
) -> dict[str, Any]:
    """Replay the warm part, rank for every cold group with the engine and with popularity."""
    t0 = time.perf_counter()
    ds = load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed, **cfg.synthetic)
    sp = cold_split(ds, cfg)
    s = bench_settings(
        **({"top_k": max(KS), "who_to_follow_k": 0, "item_ttl_s": WIDE_TTL_S, "fanout_max_users": 0} | settings)
    )
    enc = encoder if encoder is not None else make_encoder(s, cfg.dataset)  # cache keyed by text hash
    eng = restricted_engine(s, enc)
    events = events_of(ds, sp.replay)
    rstats = replay(eng, events, progress=progress, desc=f"coldstart {cfg.dataset}")
    if encoder is None:
        save_encoder_cache(enc, cfg.dataset)
    now = sp.t_cut if sp.t_cut is not None else float(eng.clock)

    rp = sp.replay
    hist = history_of(ds, rp.inter)
    item_ids = ds.items.all_ids
    counts = np.bincount(rp.inter.item, minlength=ds.n_items).astype(np.float64)
    recent = recent_popularity(rp.inter, ds.n_items, now, s.popularity_half_life_s, rp.interaction_ts)
    published = rp.item_mask if rp.item_mask is not None else np.ones(ds.n_items, bool)
    targets: dict[str, dict[str, set[str]]] = {}
    for g, rows in sp.groups.items():
        targets[g] = targets_of(ds, sp.heldout, set(rows.tolist()))
    cold_users = np.concatenate(list(sp.groups.values()))
    warm_cold_item = sp.heldout.subset(np.isin(sp.heldout.item, sp.cold_items) & ~np.isin(sp.heldout.user, cold_users))
    targets["cold_items"] = targets_of(ds, warm_cold_item)
    targets["cold_items_among_cold"] = targets["cold_items"]
    is_cold = np.zeros(ds.n_items, bool)
    is_cold[sp.cold_items] = True

    users = sorted({u for g, t in targets.items() if g != "cold_items_among_cold" for u in t})
    t_rank = time.perf_counter()
    ranked = {g: engine_rankings(eng, sorted(targets[g]), now=now) for g in GROUPS if g != "cold_items_among_cold"}
    eng.restrict(ds.items.ids(sp.cold_items))
    ranked["cold_items_among_cold"] = engine_rankings(eng, sorted(targets["cold_items"]), now=now)
    eng.restrict(None)
    rank_secs = time.perf_counter() - t_rank
    k = max(KS)
    pop = popularity_rankings(counts, item_ids, users, hist, k, published)
    pop_now = popularity_rankings(recent, item_ids, users, hist, k, published)
    groups: dict[str, Any] = {}
    not_measured: dict[str, str] = {}
    for g in GROUPS:
        tg = targets[g]
        if not tg:
            not_measured[g] = (
                "the dataset has no declared-interest profiles (LastFM: a profile built from a user's own "
                "tags would be their history)"
                if g.startswith("cold_users_profile")
                else "no users in this group"
            )
            continue
        e_m = score_rankings(ranked[g], tg)
        row: dict[str, Any] = {"n_users": int(e_m["n_users"]), "n_targets": int(sum(len(v) for v in tg.values()))}
        row["engine"] = e_m
        if g == "cold_items_among_cold":
            # popularity cannot order items nobody interacted with: the fallback is a random order
            cold_ids = {item_ids[i] for i in sp.cold_items}
            n_c = [max(int(is_cold.sum()) - len(hist.get(u, set()) & cold_ids), 1) for u in tg]
            row["random_recall@10"] = round(float(np.mean([min(10, n) / n for n in n_c])), 6)
            row["ratio_recall@10"] = ratio(e_m["recall@10"], row["random_recall@10"])
            row["n_cold_items"] = int(is_cold.sum())
        else:
            row["popularity"] = score_rankings(pop, tg)
            row["popularity_recent"] = score_rankings(pop_now, tg)
            best = max(row["popularity"]["recall@10"], row["popularity_recent"]["recall@10"])
            row["ratio_recall@10"] = ratio(e_m["recall@10"], best)  # against the stronger fallback
            if g == "cold_items":
                n_u = [max(int(published.sum()) - len(hist.get(u, ())), 1) for u in tg]
                row["random_recall@10"] = round(float(np.mean([min(10, n) / n for n in n_u])), 6)
        groups[g] = row
    return {
        "bench": "coldstart",
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "k": 10,
        "t_cut": sp.t_cut,
        "model": eng.model_version,
        "protocol": (__doc__ or "").split("Protocol", 1)[-1].strip(),
        "config": asdict(cfg),
        "groups": groups,
        "not_measured": not_measured,
        "replay": rstats,
        "rank_seconds": round(rank_secs, 2),
        "dataset_summary": ds.summary(),
        "engine_settings": {
            name: getattr(s, name)
            for name in ("device", "top_k", "item_ttl_s", "ann_threshold", "zs_weight_text", "zs_weight_social",
                         "zs_weight_popularity", "profile_weight", "zs_weight_social_tower", "sentiment_weighting",
                         "popularity_half_life_s")
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"cold start: {result['dataset']} (seed {result['seed']}, engine = {result['model']}), Recall@10")
    for c in ("case", "users", "engine", "popularity", "popular now", "random", "x best fallback", "engine NDCG@10"):
        t.add_column(c, justify="left" if c == "case" else "right")

    def f(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        return "-" if v is None else f"{v['recall@10']:.4f}"

    for g, r in result["groups"].items():
        x = r["ratio_recall@10"]
        rnd = r.get("random_recall@10")
        t.add_row(
            g, str(r["n_users"]), f"{r['engine']['recall@10']:.4f}", f(r, "popularity"), f(r, "popularity_recent"),
            "-" if rnd is None else f"{rnd:.4f}", "-" if x is None else f"{x:.2f}", f"{r['engine']['ndcg@10']:.4f}",
        )
    for g, why in result.get("not_measured", {}).items():
        t.add_row(f"[dim]{g}[/dim]", "-", "-", "-", "-", "-", "-", f"[dim]{why[:40]}[/dim]")
    Console(width=140).print(t)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2, default=str))

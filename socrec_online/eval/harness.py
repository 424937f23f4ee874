"""One harness for every model: same split, same masking, same metrics.

Protocols: ``recbole`` (RecBole-GNN social LastFM: seeded per-user random 8:1:1 over
``Dataset.interactions``, full ranking, test masks train + valid items as RecBole's cumulative
``used_ids`` do), ``temporal`` (``Dataset.timed``: train on the past, early-stop on the next
period, test on the one after), or an external split (``--split-dir``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from socrec_online.data.base import Dataset
from socrec_online.eval.baselines import Popularity, RiverMF, RiverMFConfig
from socrec_online.eval.metrics import PerUser, per_user_full_ranking
from socrec_online.eval.splits import Split, load_split_dir, recbole_split, temporal_split
from socrec_online.models.early_stop import MAX_EPOCHS
from socrec_online.models.ensemble import GRAPH_SHARE_KEY, TEXT_GAIN_KEY, width_shares

if TYPE_CHECKING:
    from socrec_online.models.train import Fitted

MODELS = ("popularity", "river_mf", "lightgcn", "text_only", "additive", "fused")
PROTOCOLS = ("recbole", "temporal")

# Published RecBole-GNN results on this protocol (results/social/lastfm.md), for the table.
PUBLISHED_LASTFM = {
    "BPR": {"recall@10": 0.1761, "ndcg@10": 0.1674, "hr@10": 0.5573},
    "LightGCN": {"recall@10": 0.2064, "ndcg@10": 0.1972, "hr@10": 0.6322},
    "DiffNet": {"recall@10": 0.1757, "ndcg@10": 0.1694, "hr@10": 0.5621},
    "MHCN": {"recall@10": 0.2123, "ndcg@10": 0.2068, "hr@10": 0.6523},
    "SEPT": {"recall@10": 0.2127, "ndcg@10": 0.2057, "hr@10": 0.6465},
}


def make_split(ds: Dataset, protocol: str, seed: int, split_dir: str | Path | None = None) -> Split:
    if split_dir is not None:
        return load_split_dir(split_dir, ds)
    if protocol == "recbole":
        return recbole_split(ds.interactions, ds.n_users, ds.n_items, seed=seed)
    if protocol == "temporal":
        return temporal_split(ds.stream, ds.n_users, ds.n_items)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def test_metrics(
    score_fn: Any, split: Split, ks: tuple[int, ...] = (10, 20), device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Test-set metrics; history = train + valid (RecBole masks both when testing)."""
    return test_per_user(score_fn, split, ks, device).means()


def test_per_user(
    score_fn: Any, split: Split, ks: tuple[int, ...] = (10, 20), device: torch.device | str = "cpu"
) -> PerUser:
    """``test_metrics`` per test user, for paired comparisons between models (``eval/paired.py``)."""
    return per_user_full_ranking(
        score_fn, split.n_users, split.n_items, (split.train, split.valid), split.test, ks, device=device
    )


@dataclass
class ModelSpec:
    """What ``fused`` & co. train with; the bench overrides fields from the CLI."""

    dim: int = 128
    dims: tuple[int, ...] = ()  # more than one: the best on valid of each width's pick (``select_width``)
    n_layers: int = 2
    tau: float = 0.1
    taus: tuple[float, ...] = ()  # more than one: train one model per temperature, keep the best on valid
    graph_half: bool = True  # fused: a graph-only half mixed in by validation (models/fusion.py)
    loss: str = "softmax"
    epochs: int = MAX_EPOCHS
    lr: float = 5e-3
    weight_decay: float = 0.0
    social_weight: float = 1.0
    weighting: str = "binary"
    text_in_graph: bool = False
    eval_every: int = 5
    patience: int = 4
    max_seconds: float = 540.0
    extra: dict[str, Any] = field(default_factory=dict)


KIND_OF = {"lightgcn": "gnn", "text_only": "text", "additive": "additive", "fused": "fused"}


def run_model(
    name: str,
    ds: Dataset,
    split: Split,
    item_text: torch.Tensor | None,
    spec: ModelSpec,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    encode: Callable[[list[str]], torch.Tensor] | None = None,
) -> tuple[dict[str, Any], PerUser]:
    """Train ``name`` on ``split.train`` (early stopping on valid); return test metrics + seconds,
    and the test metrics per user.

    ``encode`` embeds the users' own texts (profiles, comments) for the interest vector, as serving does."""
    t0 = time.perf_counter()
    if name == "popularity":
        pop = Popularity(split.n_items).learn_many(split.train)
        secs = time.perf_counter() - t0
        pu = test_per_user(pop.score_many, split)
        return {**pu.means(), "train_seconds": secs}, pu
    if name == "river_mf":
        mf = RiverMF(split.n_users, split.n_items, RiverMFConfig(seed=seed)).learn_many(split.train, progress)
        secs = time.perf_counter() - t0
        pu = test_per_user(mf.score_many, split)
        return {**pu.means(), "train_seconds": secs, "config": {"n_factors": mf.cfg.n_factors, "epochs": mf.cfg.epochs}}, pu
    if name not in KIND_OF:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    from socrec_online.models.recommender import RecommenderConfig
    from socrec_online.models.train import TrainConfig, fit

    kind = KIND_OF[name]
    needs_text = kind in ("text", "additive", "fused")
    if needs_text and item_text is None:
        raise ValueError(f"model {name!r} needs item text embeddings")
    text_dim = int(item_text.shape[1]) if item_text is not None else 384
    loss = spec.loss
    if kind == "additive" and loss == "softmax":
        loss = "bce"  # the additive formula's user term cancels inside a per-user softmax

    def fit_at(tau: float, dim: int) -> Any:
        mcfg = RecommenderConfig(
            n_users=ds.n_users,
            n_items=ds.n_items,
            kind=kind,  # type: ignore[arg-type]
            dim=dim,
            text_dim=text_dim,
            n_layers=spec.n_layers,
            social_weight=spec.social_weight,
            weighting=spec.weighting,  # type: ignore[arg-type]
            tau=tau,
            text_in_graph=spec.text_in_graph and kind == "fused",
            graph_half=spec.graph_half and kind == "fused",
        )
        return fit(ds, split, mcfg, tcfg, item_text=item_text if needs_text else None, encode=encode)

    tcfg = TrainConfig(
        epochs=spec.epochs,
        loss=loss,  # type: ignore[arg-type]
        lr=spec.lr,
        weight_decay=spec.weight_decay,
        eval_every=spec.eval_every,
        patience=spec.patience,
        max_seconds=spec.max_seconds,
        seed=seed,
        device=device,
        progress=progress,
    )
    fitted, tau_search, dim_search = select_width(fit_at, spec.taus or (spec.tau,), spec.dims or (spec.dim,), split)
    secs = time.perf_counter() - t0
    model = fitted.model
    with torch.no_grad():
        uv, iv = model.full_vectors(fitted.graph, fitted.item_text.to(device), fitted.interest.to(device))
        pu = test_per_user(lambda ub: model.score_many(uv[ub], iv), split, device=device)
    r = fitted.result
    mcfg = model.cfg
    return {
        **pu.means(),
        "train_seconds": secs,
        "best_epoch": r.best_epoch,
        "epochs_run": r.epochs_run,
        "stopped": r.stopped,
        "valid_ndcg@10": r.best_valid.get("ndcg@10"),
        **picks(fitted, tau_search, dim_search),
        "config": {"model": vars(mcfg) | {}, "train": vars(replace(tcfg, progress=False))},
    }, pu


def picks(fitted: Fitted, by_tau: dict[str, float], by_dim: dict[str, float]) -> dict[str, Any]:
    """What validation picked for a kept model, as ``socrec bench quality`` and ``socrec train``
    report it: temperature, width, each one's valid NDCG@10, the widths' shares, the popularity
    term's weight, and a halved model's text share, graph-half temperature and the text's valid
    gain over its GNN (``models/compose.py``)."""
    cfg, valid = fitted.model.cfg, fitted.result.best_valid
    out: dict[str, Any] = {"tau": cfg.tau, "dim": cfg.dim, "valid_ndcg@10_by_tau": by_tau, "valid_ndcg@10_by_dim": by_dim}
    shares = width_shares(valid)
    if shares:
        out["width_shares"] = shares
    graph_shares = width_shares(valid, GRAPH_SHARE_KEY)
    if graph_shares:
        out["graph_width_shares"] = graph_shares
    if cfg.kind in ("gnn", "fused"):
        out["pop_prior"] = cfg.pop_prior
    if cfg.halved:
        out["text_mix"] = cfg.text_mix
        out["graph_tau"] = valid.get("graph_tau", cfg.tau)
        if TEXT_GAIN_KEY in valid:
            out[TEXT_GAIN_KEY] = {"diff": valid[TEXT_GAIN_KEY], "se": valid[f"{TEXT_GAIN_KEY}_se"]}
    return out


def _valid_ndcg(f: Any) -> float:
    return float(f.result.best_valid.get("ndcg@10", -1.0))


def select_width(
    fit_at: Callable[[float, int], Any], taus: tuple[float, ...], dims: tuple[int, ...], split: Split | None = None
) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Train at each temperature and width; keep each width's run with the best valid NDCG@10,
    then the ensemble of the widths' picks with the best valid NDCG@10 (``models.ensemble``; one
    width alone when validation gives it every share), then its popularity term (``models.prior``).
    Halved fused runs are composed instead (``models.compose``): the graph part picked as the GNN
    alone would be, the text added on top.

    The temperature is what a recipe tuned on one dataset gets most wrong on another, and width is
    capacity, which depends on a dataset's size and density: both are chosen on each dataset's
    validation part, never on its test part; the widths not kept alone still add a differently
    trained view.
    Returns the kept model, the valid NDCG@10 by temperature of its largest member's width, and
    each width's own valid NDCG@10."""
    if not dims or not taus:
        raise ValueError("no width or temperature to try")
    runs = {dim: [fit_at(tau, dim) for tau in taus] for dim in dims}
    tau_search = {dim: {f"{tau:g}": _valid_ndcg(f) for tau, f in zip(taus, fs)} for dim, fs in runs.items()}
    by_dim = {str(dim): max(tau_search[dim].values()) for dim in dims}
    if split is not None and runs[dims[0]][0].model.cfg.halved:
        from socrec_online.models.compose import compose_on_valid

        fitted = compose_on_valid([runs[dim] for dim in dims], split)
        return fitted, tau_search[fitted.model.cfg.dim], by_dim
    picks = {dim: max(runs[dim], key=_valid_ndcg) for dim in dims}
    fitted = picks[max(dims, key=lambda dim: by_dim[str(dim)])]
    if len(dims) > 1 and split is not None:
        from socrec_online.models.ensemble import ensemble_on_valid

        fitted = ensemble_on_valid(list(picks.values()), split)
    by_tau = tau_search[fitted.model.cfg.dim]
    if split is not None:
        from socrec_online.models.prior import prior_on_valid

        fitted = prior_on_valid(fitted, split)
    return fitted, by_tau, by_dim

"""Offline training of the fused recommender (and its ablations) on a split.

Losses: ``softmax`` (default: per-user full softmax over all items with temperature, the
multinomial likelihood; on LastFM it beat the pairwise losses by a wide margin, see the report),
``infonce`` (sampled softmax: one positive vs ``n_neg`` shared uniform negatives), ``bce``
(binary cross-entropy over sampled negatives) and ``bpr``. AdamW, early stopping on the valid
split (NDCG@10 with train items masked), seeded, progress bar.

Labels and user features follow serving (``training_view``): a training pair whose net engagement
is <= 0 (panned in a comment) is not a positive, and the interest vector is serving's definition
(``models/interest.py``) over the training part, profiles and comments included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from socrec_online.data.base import Dataset, Interactions
from socrec_online.eval.metrics import evaluate_full_ranking
from socrec_online.eval.selection import best_on_valid
from socrec_online.eval.splits import Split
from socrec_online.models.early_stop import MAX_EPOCHS, Keeper
from socrec_online.models.gnn import InteractionGraph, build_graph
from socrec_online.models.recommender import FusedRecommender, RecommenderConfig

LossKind = Literal["softmax", "infonce", "bce", "bpr"]

TEXT_MIX_GRID = tuple(i / 10 for i in range(11))
"""The text half's shares a halved model is validated at (0: graph only, 1: the fused half only)."""
# the share while both halves train: each learns on its own loss, so it only scales them; 0.75 scales
# the graph half by sqrt(0.25) = 0.5, a power of two, which un-mixing undoes exactly (bit for bit as
# a graph-only model, ``FusedHead.halves``)
TRAIN_MIX = 0.75


@dataclass
class TrainConfig:
    epochs: int = MAX_EPOCHS  # upper bound; early stopping usually ends sooner
    batch_users: int = 256  # users per step (softmax)
    batch_pairs: int = 2048  # positive pairs per step (infonce / bce / bpr)
    n_neg: int = 256  # sampled negatives (shared per step for infonce; per pair, capped, for bce / bpr)
    loss: LossKind = "softmax"
    lr: float = 5e-3
    weight_decay: float = 0.0
    eval_every: int = 5  # epochs between validations
    patience: int = 4  # validations without improvement before stopping
    max_seconds: float = 540.0  # wall-clock budget (stop, keep the best so far)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str = "epochs"  # epochs | patience | time


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# --- features ---------------------------------------------------------------------------------
def item_text_embeddings(
    texts: list[str], cache_path: str | Path | None = None, encoder: object | None = None, progress: bool = True
) -> Tensor:
    """(N, Dt) L2-normalised text-tower embeddings, with a persistent safetensors cache."""
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    enc = encoder if encoder is not None else TextEncoder(TextEncoderConfig.from_settings())
    assert isinstance(enc, TextEncoder)
    if cache_path is not None:
        enc.load_cache(cache_path)
    before = enc.cache_len()
    out = enc.encode(texts, progress=progress).to("cpu")
    if cache_path is not None and enc.cache_len() != before:
        enc.save_cache(cache_path)
    return out


@dataclass(frozen=True)
class ServingRules:
    """The serving settings the trainer follows, so a model trains on the labels and interest
    vectors it is served with (``SOCREC_SENTIMENT_WEIGHTING``, ``SOCREC_RECENT_PER_USER``,
    ``SOCREC_INTEREST_HALF_LIFE_S``, ``SOCREC_PROFILE_WEIGHT``)."""

    sentiment_weighting: bool
    recent_per_user: int
    interest_half_life_s: float
    profile_weight: float

    @classmethod
    def from_settings(cls, s: Any | None = None) -> ServingRules:
        if s is None:
            from socrec_online.settings import get_settings

            s = get_settings()
        return cls(s.sentiment_weighting, s.recent_per_user, s.interest_half_life_s, s.profile_weight)


@dataclass
class TrainingView:
    positives: Interactions  # the training rows whose (user, item) pair nets above zero
    interest: Tensor  # (U, Dt) interest vectors, serving's definition


def training_view(
    ds: Dataset,
    train: Interactions,
    item_text: Tensor,
    encode: Callable[[list[str]], Tensor] | None = None,
    sentiment: Callable[[str], float] | None = None,
    rules: ServingRules | None = None,
) -> TrainingView:
    """Labels and interest of the training part by the serving rules (``data/labels.py``,
    ``models/interest.py``): the dataset's profiles and the comments on training pairs count,
    encoded by ``encode`` (None: their text terms are left out).

    ``sentiment`` scores comments (None: VADER, as serving); ``rules`` default to the settings.
    """
    from socrec_online.data.labels import replay
    from socrec_online.models.interest import history_of, interest_vectors

    rules = rules if rules is not None else ServingRules.from_settings()
    if sentiment is None and ds.comments:
        from socrec_online.service.sentiment import vader_sentiment

        sentiment = vader_sentiment()
    lab = replay(train, ds.comments, sentiment or (lambda _t: 0.0), rules.sentiment_weighting)
    d = item_text.shape[1]
    profile = comment_emb = None
    if encode is not None:
        profile = torch.zeros(ds.n_users, d)
        if ds.profiles:
            prof_rows = sorted(ds.profiles)
            profile[prof_rows] = encode([ds.profiles[u] for u in prof_rows]).to("cpu", torch.float32)
        if lab.comment_rows:
            comment_emb = encode([ds.comments[k].text for k in lab.comment_rows]).to("cpu", torch.float32)
    h = history_of(ds.n_users, lab.pairs, rules.recent_per_user, lab.comments, comment_emb, profile)
    interest = interest_vectors(h, item_text.to("cpu", torch.float32), rules.interest_half_life_s, rules.profile_weight)
    return TrainingView(lab.positives, interest)


# --- losses -----------------------------------------------------------------------------------
def _pos_matrix(train: Interactions, n_users: int, n_items: int, device: torch.device) -> Tensor:
    p = torch.zeros(n_users, n_items, device=device)
    p[torch.as_tensor(train.user, device=device), torch.as_tensor(train.item, device=device)] = 1.0
    return p  # (U, I) 0/1


def softmax_loss(uv: Tensor, iv: Tensor, model: FusedRecommender, pos: Tensor) -> Tensor:
    """Multinomial log-likelihood of each user's items under a softmax over all items."""
    logp = F.log_softmax(model.score_many(uv, iv), dim=1)  # (B, I)
    return -((logp * pos).sum(1) / pos.sum(1).clamp(min=1)).mean()


def pair_loss(kind: LossKind, s_pos: Tensor, s_neg: Tensor) -> Tensor:
    """s_pos (P,), s_neg (P, K) -> scalar."""
    if kind == "bpr":
        return -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) + F.binary_cross_entropy_with_logits(
            s_neg, torch.zeros_like(s_neg)
        )
    if kind == "infonce":
        logits = torch.cat([s_pos.unsqueeze(1), s_neg], dim=1)  # (P, 1 + K)
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
    raise ValueError(f"unknown pair loss {kind!r}")


# --- loop -------------------------------------------------------------------------------------
def train_recommender(
    model: FusedRecommender,
    graph: InteractionGraph | None,
    split: Split,
    item_text: Tensor,
    interest: Tensor,
    cfg: TrainConfig,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    positives: Interactions | None = None,
) -> TrainResult:
    """Train in place on ``positives`` (default ``split.train``; the whole training part stays
    masked when validating); the model ends with the weights of the best validation epoch."""
    seed_everything(cfg.seed)
    from socrec_online.devices import resolve_device

    dev = resolve_device(cfg.device)
    model.to(dev).train()
    item_text = item_text.to(dev)
    interest = interest.to(dev)
    if graph is not None:
        graph.normalized_csr(dev)
    nu, ni = split.n_users, split.n_items
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    train = positives if positives is not None else split.train
    pos = _pos_matrix(train, nu, ni, dev) if cfg.loss == "softmax" else None
    users = torch.as_tensor(np.unique(train.user), dtype=torch.long)
    pu = torch.as_tensor(train.user, dtype=torch.long)
    pi = torch.as_tensor(train.item, dtype=torch.long)

    halved = model.cfg.halved
    if halved:
        model.set_text_mix(TRAIN_MIX)  # both halves learn; the mix is picked on validation below

    def evaluate_at(alphas: Sequence[float | None]) -> list[dict[str, float]]:
        model.eval()
        out = valid_at_mixes(model, graph, split, item_text, interest, alphas)
        if halved:
            model.set_text_mix(TRAIN_MIX)
        model.train()
        return out

    # each part stops on its own validation: alpha 0 scores the graph half alone, 1 the fused half
    def views_of(i: int) -> Callable[[], dict[str, Tensor]]:
        return lambda: model.part_views()[i][1]

    keepers = [Keeper(name, views_of(i)) for i, (name, _) in enumerate(model.part_views())]
    alphas: list[float | None] = [0.0, 1.0] if halved else [None]
    history: list[dict[str, float]] = []
    stopped = "epochs"
    t0 = time.perf_counter()
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"train {model.cfg.kind}/{cfg.loss}", unit="ep")
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        total = 0.0
        if cfg.loss == "softmax":
            assert pos is not None
            perm = users[torch.randperm(users.numel(), generator=gen)]
            batches = [perm[s : s + cfg.batch_users] for s in range(0, perm.numel(), cfg.batch_users)]
        else:
            perm = torch.randperm(pu.numel(), generator=gen)
            batches = [perm[s : s + cfg.batch_pairs] for s in range(0, perm.numel(), cfg.batch_pairs)]
        for b in batches:
            uv_all, iv_all = model.full_vectors(graph, item_text, interest, prior=False)  # (U, k), (I, k)
            if cfg.loss == "softmax":
                assert pos is not None
                bd = b.to(dev)
            else:
                bu, bi = pu[b].to(dev), pi[b].to(dev)
                neg = (
                    torch.randint(0, ni, (cfg.n_neg,), generator=gen)
                    if cfg.loss == "infonce"
                    else torch.randint(0, ni, (bu.numel(), min(cfg.n_neg, 8)), generator=gen)
                ).to(dev)
            loss = uv_all.new_zeros(())
            # a halved model's halves each learn on their own loss (an ensemble in one dot product)
            for uv, iv in zip(model.head.halves(uv_all), model.head.halves(iv_all)):
                if pos is not None:  # softmax
                    loss = loss + softmax_loss(uv[bd], iv, model, pos[bd])
                    continue
                s_pos = pair_scores(model, uv[bu], iv[bi])  # (P,)
                if cfg.loss == "infonce":
                    s_neg = model.score_many(uv[bu], iv[neg])  # (P, K) shared negatives
                else:
                    k = neg.shape[1]
                    s_neg = pair_scores(model, uv[bu].unsqueeze(1).expand(-1, k, -1).reshape(-1, uv.shape[1]),
                                        iv[neg.reshape(-1)]).reshape(-1, k)
                loss = loss + pair_loss(cfg.loss, s_pos, s_neg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        elapsed = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(len(batches), 1):.4f}", best_ndcg=f"{keepers[-1].best['ndcg@10']:.4f}")
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs or elapsed > cfg.max_seconds:
            m: dict[str, float] = {}
            for keeper, mk in zip(keepers, evaluate_at(alphas)):
                keeper.offer(mk, epoch)
                m |= mk if keeper is keepers[-1] else {f"{keeper.name}_ndcg@10": mk["ndcg@10"]}
            m["epoch"] = float(epoch)
            m["loss"] = total / max(len(batches), 1)
            m["seconds"] = time.perf_counter() - t0
            history.append(m)
            if on_eval is not None:
                on_eval(epoch, m)
            if all(k.out_of_patience(cfg.patience) for k in keepers):
                stopped = "patience"
                break
            if elapsed > cfg.max_seconds:
                stopped = "time"
                break
    if bar is not None:
        bar.close()
    for keeper in keepers:
        keeper.restore()
    best = keepers[-1].best
    model.eval()
    if halved:  # the text share that validates best, the halves at their own best epochs
        best = mix_on_valid(model, graph, split, item_text, interest)
        best |= {f"{k.name}_epoch": float(k.epoch) for k in keepers}
        best |= {f"{k.name}_ndcg@10": k.best["ndcg@10"] for k in keepers}
    best_epoch = max(k.epoch for k in keepers)
    return TrainResult(best_epoch, best, epoch, time.perf_counter() - t0, history, stopped)


@torch.no_grad()
def valid_at_mixes(
    model: FusedRecommender,
    graph: InteractionGraph | None,
    split: Split,
    item_text: Tensor,
    interest: Tensor,
    alphas: Sequence[float | None],
) -> list[dict[str, float]]:
    """Valid metrics of the model (``None``), or of a halved model at each text share in ``alphas``,
    from one propagation: only the head's mixing depends on the share. Leaves the last share set."""
    dev = model.user_emb.device
    item_text, interest = item_text.to(dev), interest.to(dev)
    h_u, h_i = model.graph_rows(graph, item_text)
    out = []
    for alpha in alphas:
        if alpha is not None:
            model.set_text_mix(alpha)
        uv, iv = model.vectors_from(h_u, h_i, item_text, interest, prior=False)
        out.append(evaluate_full_ranking(
            lambda ub, uv=uv, iv=iv: model.score_many(uv[ub], iv),  # type: ignore[misc]
            split.n_users, split.n_items, (split.train,), split.valid, device=dev,
        ))
    return out


def mix_on_valid(
    model: FusedRecommender, graph: InteractionGraph | None, split: Split, item_text: Tensor, interest: Tensor
) -> dict[str, float]:
    """Set a halved model's ``text_mix`` to the share on ``TEXT_MIX_GRID`` with the best valid
    NDCG@10; return that share's valid metrics with ``text_mix``."""
    by_mix = dict(zip(TEXT_MIX_GRID, valid_at_mixes(model, graph, split, item_text, interest, TEXT_MIX_GRID)))
    alpha, metrics = best_on_valid(TEXT_MIX_GRID, by_mix.__getitem__)
    model.set_text_mix(alpha)
    return metrics | {"text_mix": alpha}


def pair_scores(model: FusedRecommender, uv: Tensor, iv: Tensor) -> Tensor:
    """Row-wise scores of aligned (P, k) user and item vectors without a (P, P) matrix."""
    if uv.shape[1] == 1:  # additive head: logit = u + i
        return (uv + iv).squeeze(1)
    return (uv * iv).sum(1) / model.cfg.tau


# --- one call: dataset + split -> trained model --------------------------------------------------
@dataclass
class Fitted:
    model: FusedRecommender
    graph: InteractionGraph | None
    item_text: Tensor  # (I, Dt)
    interest: Tensor  # (U, Dt)
    result: TrainResult


def fit(
    ds: Dataset,
    split: Split,
    model_cfg: RecommenderConfig,
    train_cfg: TrainConfig,
    item_text: Tensor | None = None,
    encode: Callable[[list[str]], Tensor] | None = None,
    rules: ServingRules | None = None,
) -> Fitted:
    """Build the training graph (positive train pairs + the social graph), features, and train.

    Labels and interest follow serving (``training_view``); ``encode`` embeds the users' own texts
    (profiles, comments) for their interest."""
    seed_everything(train_cfg.seed)
    if item_text is None:
        item_text = torch.zeros(ds.n_items, model_cfg.text_dim)
        encode = None
    view = training_view(ds, split.train, item_text, encode, rules=rules)
    pos = view.positives
    graph = None
    if model_cfg.kind != "text":
        graph = build_graph(
            ds.n_users, ds.n_items, pos.user, pos.item, pos.weight, ds.social_src, ds.social_dst, model_cfg.gnn()
        )
    model = FusedRecommender(model_cfg)
    res = train_recommender(model, graph, split, item_text, view.interest, train_cfg, positives=pos)
    return Fitted(model, graph, item_text, view.interest, res)

"""One fine-tune: warm-start from the serving model, train on the buffer, score candidate vs current.

Why warm start with zero rows for new ids: that is exactly how serving treats a node the
snapshot never saw (``ServingState``: zero ID embedding, vector from neighbours and text), so
"current" evaluated here is the model users are getting now, and the candidate starts from it.

What trains: the ID embeddings (the GNN's layer 0; LightGCN itself has no weights), the
fusion head, and, with ``lora_r > 0``, LoRA adapters on the text tower (``models/text.py``).
Loss: sampled softmax (InfoNCE) of each positive against ``n_neg`` sampled negatives
(``models/train.py``'s ``pair_loss``). ``grad_accum`` micro-batches per optimizer step keep
memory bounded; bf16 autocast where the device computes it natively.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from socrec_online.data.base import Interactions
from socrec_online.devices import native_bf16
from socrec_online.eval.metrics import evaluate_full_ranking
from socrec_online.models.gnn import InteractionGraph, build_graph
from socrec_online.models.interest import history_of, interest_vectors
from socrec_online.models.recommender import FusedRecommender, RecommenderConfig
from socrec_online.models.train import ServingRules, pair_loss, pair_scores, seed_everything
from socrec_online.online.buffer import TrainingData, sample_negatives

log = logging.getLogger(__name__)

GATE_METRIC = "recall@10"


@dataclass
class FinetuneConfig:
    steps: int = 40  # optimizer steps per fine-tune
    batch_pairs: int = 512  # positive pairs per optimizer step
    grad_accum: int = 2  # micro-batches per step (memory ~ batch_pairs / grad_accum)
    n_neg: int = 32  # sampled negatives per positive
    lr: float = 3e-3
    lora_lr: float = 1e-3
    weight_decay: float = 0.0
    lora_r: int = 0  # LoRA rank on the text tower; 0 = text tower frozen
    lora_alpha: int = 16
    lora_texts: int = 64  # item texts re-encoded with gradient per micro-batch (the rest: cached)
    max_seconds: float = 300.0  # wall-clock bound of the training loop (its pauses included)
    duty: float = 1.0  # share of the loop's wall time spent computing: pause (1/duty - 1) x each step's time
    amp: str = "auto"  # auto | on | off: bf16 autocast
    seed: int = 0
    device: str = "cpu"
    rules: ServingRules | None = None  # serving's interest settings; None: from the settings


@dataclass
class FinetuneResult:
    model: FusedRecommender
    current: dict[str, float]  # gate metrics of the serving model on the holdout
    candidate: dict[str, float]  # gate metrics of the fine-tuned model
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    amp: bool = False
    lora: dict[str, Tensor] | None = None  # the text tower's LoRA tensors after training


# --- features -----------------------------------------------------------------------------------
def interest_of(data: TrainingData, item_text: Tensor, encoder: Any | None, rules: ServingRules) -> Tensor:
    """(U, Dt) interest vectors by serving's definition (``models/interest.py``) over the data before
    the held-out slice: the training pairs' net engagement, the users' profiles and comments
    (encoded by ``encoder``; None: those text terms are left out)."""
    dev = item_text.device
    profile = comment_emb = None
    if encoder is not None:
        profile = torch.zeros(data.n_users, item_text.shape[1], device=dev)
        if data.profiles:
            rows = sorted(data.profiles)
            profile[rows] = encoder.encode([data.profiles[r] for r in rows]).to(dev, torch.float32)
        if data.comments:
            comment_emb = encoder.encode([c[1] for c in data.comments]).to(dev, torch.float32)
    h = history_of(
        data.n_users, data.pairs, rules.recent_per_user, [(c[0], c[2], c[3]) for c in data.comments], comment_emb,
        profile,
    )
    return interest_vectors(h, item_text, rules.interest_half_life_s, rules.profile_weight)


def graph_of(data: TrainingData, cfg: RecommenderConfig) -> InteractionGraph:
    """Training pairs + follows (held-out pairs are not edges: the gate must not see them)."""
    return build_graph(
        data.n_users, data.n_items, data.train_u, data.train_i, None, data.follow_src, data.follow_dst, cfg.gnn()
    )


def warm_start(
    current: FusedRecommender | None, data: TrainingData, cfg: RecommenderConfig, n_known_users: int,
    n_known_items: int,
) -> FusedRecommender:
    """A model over ``data``'s rows: the current weights (known rows first), zero rows for new ids."""
    import dataclasses

    new_cfg = dataclasses.replace(cfg, n_users=data.n_users, n_items=data.n_items)
    model = FusedRecommender(new_cfg)
    if current is None:
        return model
    old = current.state_dict()
    with torch.no_grad():
        model.user_emb.zero_()
        model.item_emb.zero_()
        model.user_emb[:n_known_users] = old["user_emb"][:n_known_users].to(model.user_emb.device)
        model.item_emb[:n_known_items] = old["item_emb"][:n_known_items].to(model.item_emb.device)
        mine = model.state_dict()
        for k, v in old.items():
            if k in ("user_emb", "item_emb") or k not in mine or mine[k].shape != v.shape:
                continue
            mine[k].copy_(v)
    return model


# --- the gate's measurement ---------------------------------------------------------------------
def _inter(u: np.ndarray, i: np.ndarray) -> Interactions:
    n = u.shape[0]
    return Interactions(u, i, np.zeros(n), np.ones(n, np.float32), np.zeros(n, np.int8))


@torch.no_grad()
def holdout_metrics(
    model: FusedRecommender | None,
    graph: InteractionGraph,
    item_text: Tensor,
    interest: Tensor,
    data: TrainingData,
    device: torch.device,
) -> dict[str, float]:
    """Full ranking of the held-out pairs (training positives masked); ``model=None``: text only,
    the zero-shot model's text term (what serves before any snapshot passed the gate)."""
    if data.hold_u.size == 0:
        return {GATE_METRIC: 0.0, "hr@10": 0.0, "ndcg@10": 0.0, "n_users": 0.0}
    if model is None:
        iv = F.normalize(item_text, dim=1)
        uv = interest

        def score(ub: Tensor) -> Tensor:
            return uv[ub] @ iv.T  # (B, I)
    else:
        model.eval()
        uv, iv = model.full_vectors(graph, item_text, interest)

        def score(ub: Tensor) -> Tensor:
            return model.score_many(uv[ub], iv)  # (B, I)

    m = evaluate_full_ranking(
        score, data.n_users, data.n_items, (_inter(data.train_u, data.train_i),),
        _inter(data.hold_u, data.hold_i), ks=(10,), device=device,
    )
    return {k: float(v) for k, v in m.items() if not k.startswith("precision")}


# --- training -----------------------------------------------------------------------------------
def pause_after_step(step_s: float, duty: float) -> float:
    """Sleep ``step_s * (1 / duty - 1)`` seconds after an optimizer step that took ``step_s``.

    Why: beside a worker on a small box, priority alone (nice, SCHED_IDLE) still lets a step that
    runs while a micro-batch is scored share the caches and memory bandwidth with it; pausing
    bounds the share of wall time in which the two overlap to ``duty``. Returns the pause.
    """
    pause = step_s * (1.0 / duty - 1.0) if 0.0 < duty < 1.0 else 0.0
    if pause > 0.0:
        time.sleep(pause)
    return pause


def fine_tune(
    current: FusedRecommender | None,
    data: TrainingData,
    model_cfg: RecommenderConfig,
    cfg: FinetuneConfig,
    encoder: Any | None = None,
    n_known: tuple[int, int] = (0, 0),
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Train a candidate from ``current`` on ``data.train_*``; measure both on ``data.hold_*``.

    ``encoder``: a ``TextEncoder`` (with LoRA adapters already added when ``cfg.lora_r > 0``);
    None: item texts are zero vectors (tests of the collaborative part only).
    """
    from socrec_online.devices import resolve_device

    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    dev = resolve_device(cfg.device)
    amp = cfg.amp == "on" or (cfg.amp == "auto" and native_bf16(dev))
    lora_enc: Any = encoder if cfg.lora_r > 0 else None  # the text tower being adapted, if any
    lora_on = lora_enc is not None
    texts = data.item_texts

    def encode_all() -> Tensor:
        if encoder is None:
            return torch.zeros(data.n_items, model_cfg.text_dim, device=dev)
        return encoder.encode(texts).to(dev, torch.float32)  # (I, Dt)

    base_text = encode_all()
    rules = cfg.rules if cfg.rules is not None else ServingRules.from_settings()
    interest = interest_of(data, base_text, encoder, rules)  # (U, Dt)
    graph = graph_of(data, model_cfg)
    graph.normalized_csr(dev)
    start = warm_start(current, data, model_cfg, *n_known).to(dev)
    cur_metrics = holdout_metrics(start if current is not None else None, graph, base_text, interest, data, dev)

    model = copy.deepcopy(start).train()
    groups: list[dict[str, Any]] = [{"params": list(model.parameters()), "lr": cfg.lr}]
    lora_params: list[torch.nn.Parameter] = []
    if lora_on:
        from socrec_online.models.lora import lora_parameters

        lora_params = lora_parameters(lora_enc)
        groups.append({"params": lora_params, "lr": cfg.lora_lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    n_pairs = int(data.train_u.size)
    positives: dict[int, set[int]] = {}
    for u, i in zip(data.train_u.tolist(), data.train_i.tolist(), strict=True):
        positives.setdefault(u, set()).add(i)
    losses: list[float] = []
    steps = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="fine-tune", unit="step")
    n_acc = max(1, cfg.grad_accum)
    for _step in range(cfg.steps if n_pairs else 0):
        if time.perf_counter() - t0 > cfg.max_seconds or (should_stop is not None and should_stop()):
            break
        t_step = time.perf_counter()
        idx = rng.choice(n_pairs, size=min(cfg.batch_pairs, n_pairs), replace=False)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for chunk in np.array_split(idx, n_acc):
            if chunk.size == 0:
                continue
            bu = data.train_u[chunk]
            bi = data.train_i[chunk]
            neg = sample_negatives(bu, data.n_items, cfg.n_neg, positives, rng)  # (P, K)
            item_text = base_text
            if lora_on:
                # gradient reaches the adapters through the texts of this micro-batch's items; bf16
                # autocast only here (the transformer is the cost; sparse CSR matmul has no CPU bf16)
                rows = np.unique(np.concatenate([bi, neg.reshape(-1)]))
                rows = rows[rng.permutation(rows.size)[: cfg.lora_texts]]
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    fresh = lora_enc.encode_train([texts[r] for r in rows.tolist()])  # (T, Dt)
                item_text = base_text.clone()
                item_text[torch.as_tensor(rows, device=dev)] = fresh.to(dev).float()
            # the popularity term is picked on validation, never trained against (models/prior.py)
            uv, iv = model.full_vectors(graph, item_text, interest, prior=False)  # (U, k), (I, k)
            tu = torch.as_tensor(bu, device=dev)
            ti = torch.as_tensor(bi, device=dev)
            tn = torch.as_tensor(neg, device=dev)
            s_pos = pair_scores(model, uv[tu], iv[ti])  # (P,)
            k = tn.shape[1]
            s_neg = pair_scores(
                model, uv[tu].unsqueeze(1).expand(-1, k, -1).reshape(-1, uv.shape[1]), iv[tn.reshape(-1)]
            ).reshape(-1, k)  # (P, K)
            loss = pair_loss("infonce", s_pos, s_neg) * (chunk.size / idx.size)
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 5.0)
        opt.step()
        losses.append(total)
        steps += 1
        pause_after_step(time.perf_counter() - t_step, cfg.duty)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4f}")
    if bar is not None:
        bar.close()
    model.eval()
    new_text = encode_all() if lora_on else base_text
    # interest stays the one trained with: serving builds it from the engine's own text tower
    cand_metrics = holdout_metrics(model, graph, new_text, interest, data, dev)
    lora = None
    if lora_on:
        from socrec_online.models.lora import lora_state_dict

        lora = lora_state_dict(lora_enc)
    return FinetuneResult(
        model=model.to("cpu"),
        current=cur_metrics,
        candidate=cand_metrics,
        losses=losses,
        steps=steps,
        seconds=time.perf_counter() - t0,
        amp=amp,
        lora=lora,
    )


@torch.no_grad()
def buffer_loss(model: FusedRecommender, data: TrainingData, item_text: Tensor | None = None, n_neg: int = 32,
                seed: int = 0, rules: ServingRules | None = None) -> float:
    """The training objective on the whole buffer with fixed negatives (tests: fine-tuning lowers it)."""
    dev = model.user_emb.device
    text = item_text if item_text is not None else torch.zeros(data.n_items, model.cfg.text_dim, device=dev)
    interest = interest_of(data, text, None, rules if rules is not None else ServingRules.from_settings())
    graph = graph_of(data, model.cfg)
    rng = np.random.default_rng(seed)
    pos: dict[int, set[int]] = {}
    for u, i in zip(data.train_u.tolist(), data.train_i.tolist(), strict=True):
        pos.setdefault(u, set()).add(i)
    neg = torch.as_tensor(sample_negatives(data.train_u, data.n_items, n_neg, pos, rng), device=dev)
    model.eval()
    uv, iv = model.full_vectors(graph, text, interest, prior=False)
    tu = torch.as_tensor(data.train_u, device=dev)
    s_pos = pair_scores(model, uv[tu], iv[torch.as_tensor(data.train_i, device=dev)])
    s_neg = pair_scores(
        model, uv[tu].unsqueeze(1).expand(-1, n_neg, -1).reshape(-1, uv.shape[1]), iv[neg.reshape(-1)]
    ).reshape(-1, n_neg)
    return float(pair_loss("infonce", s_pos, s_neg))

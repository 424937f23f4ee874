"""The fused recommender: ID embeddings -> LightGCN social tower -> fusion head with the text tower.

Training (``models/train.py``) runs ``full_vectors`` on the whole graph; serving follows the
stream with ``models.serving.ServingState``. Snapshots hold the weights and the config
(``save_recommender`` / ``load_recommender``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from socrec_online.models.fusion import FusionConfig, FusionKind, Member, make_head
from socrec_online.models.gnn import (
    InteractionGraph,
    LightGCN,
    SocialGNNConfig,
    Weighting,
)


@dataclass
class RecommenderConfig:
    n_users: int  # users with a trained ID embedding (rows 0..n_users-1)
    n_items: int  # items with a trained ID embedding
    kind: FusionKind = "fused"
    dim: int = 64
    text_dim: int = 384
    n_layers: int = 2
    social_weight: float = 1.0
    weighting: Weighting = "binary"
    tau: float = 0.1
    text_in_graph: bool = False  # also add W_g·text to the items' layer-0 input (text propagates to users)
    init_std: float = 0.1
    graph_half: bool = False  # kind "fused": a graph-only half beside the fused one (models/fusion.py)
    text_mix: float = 1.0  # the fused half's share of the score, picked on validation (graph_half only)
    members: tuple[Member, ...] = ()  # an ensemble of widths (models/ensemble.py); empty: one model of ``dim``
    pop_prior: float = 0.0  # logit += pop_prior * log(1 + item's users), picked on valid (models/prior.py)

    def __post_init__(self) -> None:
        self.members = tuple(Member(int(m[0]), float(m[1]), float(m[2])) for m in self.members)
        if self.members and self.text_in_graph:
            raise ValueError("an ensemble of widths does not take text into the graph")

    @property
    def halved(self) -> bool:
        return self.fusion().halved

    @property
    def emb_dim(self) -> int:
        """Width of the ID embeddings and of the LightGCN layers (both halves when halved, every
        member of an ensemble)."""
        return self.fusion().collab_width

    @property
    def widths(self) -> tuple[int, ...]:
        """The members' widths (one: ``dim``)."""
        return tuple(m.dim for m in self.members) or (self.dim,)

    def gnn(self) -> SocialGNNConfig:
        return SocialGNNConfig(n_layers=self.n_layers, social_weight=self.social_weight, weighting=self.weighting)

    def fusion(self) -> FusionConfig:
        return FusionConfig(
            kind=self.kind, dim=self.dim, text_dim=self.text_dim, tau=self.tau, graph_half=self.graph_half,
            text_mix=self.text_mix, members=self.members, pop_prior=self.pop_prior,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecommenderConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class FusedRecommender(nn.Module):
    """Batch-first scoring: ``score_many(user_vecs (B, k), item_vecs (C, k)) -> (B, C)``."""

    def __init__(self, cfg: RecommenderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.uses_graph = cfg.kind != "text"
        # a halved model draws its graph half first, as a graph-only model draws its whole, so the
        # graph half starts (and, its loss being its own, trains) as ``kind="gnn"`` at the same seed
        widths = [s.width for s in cfg.fusion().segments()]
        draws = [(torch.randn(cfg.n_users, w), torch.randn(cfg.n_items, w)) for w in widths]
        self.user_emb = nn.Parameter(torch.cat([u for u, _ in draws], 1) * cfg.init_std)  # (U, d)
        self.item_emb = nn.Parameter(torch.cat([i for _, i in draws], 1) * cfg.init_std)  # (I, d)
        self.text_in = nn.Linear(cfg.text_dim, cfg.dim, bias=False) if cfg.text_in_graph else None
        if self.text_in is not None:
            nn.init.normal_(self.text_in.weight, std=cfg.init_std / cfg.text_dim**0.5)
        self.gnn = LightGCN(cfg.gnn())
        self.head = make_head(cfg.fusion())

    # --- towers ---------------------------------------------------------------------------
    def layer0(self, n_users: int, n_items: int, item_text: Tensor | None) -> Tensor:
        """(n_users + n_items, d) inputs; rows beyond the trained ones (new nodes) are zero."""
        cfg = self.cfg
        dev = self.user_emb.device
        u = self.user_emb[: min(n_users, cfg.n_users)]
        i = self.item_emb[: min(n_items, cfg.n_items)]
        if n_users > cfg.n_users:
            u = torch.cat([u, u.new_zeros(n_users - cfg.n_users, cfg.emb_dim)])
        if n_items > cfg.n_items:
            i = torch.cat([i, i.new_zeros(n_items - cfg.n_items, cfg.emb_dim)])
        if self.text_in is not None and item_text is not None:
            t = self.text_in(item_text[:n_items].to(dev))  # (I, d): into the fused half only
            i = i + (torch.cat([torch.zeros_like(t), t], dim=1) if cfg.halved else t)
        return torch.cat([u[:n_users], i[:n_items]])  # (N, d)

    def propagate(self, graph: InteractionGraph, item_text: Tensor | None) -> tuple[Tensor, Tensor]:
        """Full LightGCN pass: (h_users (U, d), h_items (I, d)) for every node of ``graph``."""
        x0 = self.layer0(graph.n_users, graph.n_items, item_text)
        out = self.gnn(x0, graph.normalized_csr(x0.device))
        return out[: graph.n_users], out[graph.n_users :]

    def full_vectors(
        self, graph: InteractionGraph | None, item_text: Tensor, interest: Tensor, prior: bool = True
    ) -> tuple[Tensor, Tensor]:
        """(user_vecs (U, k), item_vecs (I, k)) for all rows; differentiable (training passes
        ``prior=False``: the popularity term is picked after training and never trained against)."""
        h_u, h_i = self.graph_rows(graph, item_text)
        users = graph.item_degree() if graph is not None and prior and self.cfg.pop_prior else None
        return self.vectors_from(h_u, h_i, item_text, interest, users, prior)

    def graph_rows(self, graph: InteractionGraph | None, item_text: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The propagated (h_users, h_items), or (None, None) for a model or call without a graph."""
        if self.uses_graph and graph is not None:
            return self.propagate(graph, item_text)
        return None, None

    def vectors_from(
        self, h_u: Tensor | None, h_i: Tensor | None, item_text: Tensor, interest: Tensor,
        item_users: Tensor | None = None, prior: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """The head's (user_vecs, item_vecs) from propagated rows: re-mixing the halves at another
        ``text_mix`` needs this step only, not another propagation. ``item_users`` (I,): the items'
        users in the graph, for the popularity term."""
        return (self.head.user_vectors(h_u, interest, prior),
                self.head.item_vectors(h_i, item_text, item_users, prior))

    # --- verbs ------------------------------------------------------------------------------
    def item_vectors(self, item_text: Tensor, collab: Tensor | None = None, item_users: Tensor | None = None) -> Tensor:
        """(C, k) from text (C, Dt) and collaborative rows (C, d) (None / zero rows: new items);
        ``item_users`` (C,): their users in the graph (the popularity term; None: none yet)."""
        return self.head.item_vectors(collab, item_text, item_users)

    def user_vectors(self, h_user: Tensor | None, interest: Tensor) -> Tensor:
        """(B, k) from GNN user rows (B, d) (None: no graph) and interest text vectors (B, Dt)."""
        return self.head.user_vectors(h_user, interest)

    def score_many(self, user_vecs: Tensor, item_vecs: Tensor) -> Tensor:
        return self.head.score_many(user_vecs, item_vecs)  # (B, C) logits (monotone in sigmoid)

    def part_views(self) -> list[tuple[str, dict[str, Tensor]]]:
        """The independently trained parts' weights as views: ``whole``, or ``graph`` and ``fused`` halves."""
        whole = dict(self.state_dict(keep_vars=True))
        if not self.cfg.halved or self.cfg.members:
            return [("whole", whole)]
        d = self.cfg.dim
        graph = {"user_emb": self.user_emb[:, :d], "item_emb": self.item_emb[:, :d]}
        return [("graph", graph), ("fused", whole | {"user_emb": self.user_emb[:, d:], "item_emb": self.item_emb[:, d:]})]

    def set_text_mix(self, alpha: float) -> None:
        """The fused half's share of the score (a halved model; see ``models/fusion.py``)."""
        self.head.set_text_mix(alpha)
        self.cfg.text_mix = float(alpha)

    def set_pop_prior(self, beta: float) -> None:
        """The popularity term's weight (``models/prior.py``)."""
        self.head.set_pop_prior(beta)
        self.cfg.pop_prior = float(beta)

    @torch.no_grad()
    def rank(
        self, user_vecs: Tensor, item_vecs: Tensor, k: int, exclude: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Top-k (scores (B, k), item columns (B, k)); ``exclude`` (B, C) bool masks items out."""
        s = self.score_many(user_vecs, item_vecs)
        if exclude is not None:
            s = s.masked_fill(exclude, -torch.inf)
        k = min(k, s.shape[1])
        top = s.topk(k, dim=1)
        return top.values, top.indices

    # --- snapshots -------------------------------------------------------------------------
    def to_snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        return tensors, {"model": "FusedRecommender", "recommender": asdict(self.cfg)}

    @classmethod
    def from_snapshot(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> FusedRecommender:
        cfg = RecommenderConfig.from_dict(config.get("recommender", config))
        model = cls(cfg)
        model.load_state_dict(tensors, strict=True)
        model.eval()
        return model


# --- saving with the id maps -------------------------------------------------------------------
def save_recommender(
    root: str | Path,
    model: FusedRecommender,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    metrics: dict[str, Any],
    data_window: dict[str, Any] | None = None,
    parent: str | None = None,
    extra_config: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Any:
    """A versioned snapshot (safetensors + manifest) plus the id lists of the trained rows
    (and ``extra_files``, e.g. the trainer's text-tower LoRA tensors)."""
    from socrec_online.snapshot import save_snapshot

    tensors, config = model.to_snapshot()
    config.update(extra_config or {})
    extra = {
        "user_ids.json": json.dumps(list(user_ids)).encode(),
        "item_ids.json": json.dumps(list(item_ids)).encode(),
        **(extra_files or {}),
    }
    return save_snapshot(
        Path(root), tensors, config, metrics, parent=parent, data_window=data_window, extra_files=extra
    )


def load_recommender(path: str | Path) -> tuple[FusedRecommender, list[str], list[str], dict[str, Any]]:
    """(model, trained user ids by row, trained item ids by row, manifest); verifies checksums."""
    from socrec_online.snapshot import load_snapshot, read_extra

    tensors, manifest = load_snapshot(Path(path))
    model = FusedRecommender.from_snapshot(tensors, manifest["config"])
    users = json.loads(read_extra(Path(path), "user_ids.json"))
    items = json.loads(read_extra(Path(path), "item_ids.json"))
    return model, users, items, manifest

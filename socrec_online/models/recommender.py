"""The fused recommender: ID embeddings -> LightGCN social tower -> fusion head with the text tower.

Training (``models/train.py``) runs ``full_vectors`` on the whole graph. Serving uses
:class:`ServingState`: it owns the growable graph, keeps every LightGCN layer, and after a batch of
new edges recomputes only the k-hop region they touch, so users and items that did not exist at
training time are scored inductively (unknown nodes start from a zero ID embedding and get their
vector from their neighbourhood and their text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from socrec_online.idmap import IdMap
from socrec_online.models.fusion import FusionConfig, FusionKind, Member, make_head
from socrec_online.models.gnn import (
    IncrementalPropagator,
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
            text_mix=self.text_mix, members=self.members,
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
        self, graph: InteractionGraph | None, item_text: Tensor, interest: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(user_vecs (U, k), item_vecs (I, k)) for all rows; differentiable (used in training)."""
        h_u, h_i = self.graph_rows(graph, item_text)
        return self.vectors_from(h_u, h_i, item_text, interest)

    def graph_rows(self, graph: InteractionGraph | None, item_text: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The propagated (h_users, h_items), or (None, None) for a model or call without a graph."""
        if self.uses_graph and graph is not None:
            return self.propagate(graph, item_text)
        return None, None

    def vectors_from(
        self, h_u: Tensor | None, h_i: Tensor | None, item_text: Tensor, interest: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The head's (user_vecs, item_vecs) from propagated rows: re-mixing the halves at another
        ``text_mix`` needs this step only, not another propagation."""
        return self.head.user_vectors(h_u, interest), self.head.item_vectors(h_i, item_text)

    # --- verbs ------------------------------------------------------------------------------
    def item_vectors(self, item_text: Tensor, collab: Tensor | None = None) -> Tensor:
        """(C, k) from text (C, Dt) and collaborative rows (C, d) (None / zero rows: new items)."""
        return self.head.item_vectors(collab, item_text)

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


# --- serving ------------------------------------------------------------------------------------
class ServingState:
    """A trained model on a graph that grows event by event (the streaming engine holds one).

    Rows: ``users`` / ``items`` id maps start with the trained ids (so trained rows keep their
    embeddings) and append new ids. Call ``learn_*`` for each event of a micro-batch, then
    ``flush()`` once: it applies the k-hop incremental LightGCN update and refreshes the cached
    vectors of the rows it changed. Scoring reads caches only.
    """

    def __init__(
        self,
        model: FusedRecommender,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        item_text: Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        cfg = model.cfg
        self.users = IdMap(user_ids)
        self.items = IdMap(item_ids)
        self.graph = InteractionGraph(len(self.users), len(self.items), cfg.gnn())
        n_i = len(self.items)
        self.item_text = torch.zeros(n_i, cfg.text_dim, device=self.device)  # (I, Dt)
        self.has_text = torch.zeros(n_i, dtype=torch.bool, device=self.device)
        if item_text is not None:
            self.item_text[: item_text.shape[0]] = item_text.to(self.device)
            self.has_text[: item_text.shape[0]] = True
        self._pending_u: list[int] = []
        self._pending_i: list[int] = []
        self._prop: IncrementalPropagator | None = None
        self._item_proj: Tensor | None = None
        self._item_vecs: Tensor = torch.zeros(0, 1)
        self._rebuild()

    # --- ids ------------------------------------------------------------------------------
    def user_rows(self, ids: Sequence[str]) -> Tensor:
        """Rows of user ids, adding unknown ones (a new user is a node with no edges yet)."""
        return torch.as_tensor(self.users.add_many(ids), dtype=torch.long)

    def item_rows(self, ids: Sequence[str]) -> Tensor:
        return torch.as_tensor(self.items.add_many(ids), dtype=torch.long)

    # --- state changes ------------------------------------------------------------------------
    @torch.no_grad()
    def _rebuild(self) -> None:
        """Full recompute (start, or after a model swap)."""
        self._grow()
        if self.model.uses_graph:
            x0 = self.model.layer0(self.graph.n_users, self.graph.n_items, self.item_text)
            self._prop = IncrementalPropagator(self.graph, x0.to(self.device))
            h_i: Tensor | None = self._prop.item_embeddings
        else:
            self._prop = None
            h_i = None
        self._item_proj = self.model.head.project_item_text(self.item_text)  # (I, k) cached W_t·text
        self._item_vecs = self.model.head.item_vectors_from(h_i, self._item_proj, len(self.items))

    def _grow(self) -> None:
        nu, ni = len(self.users), len(self.items)
        self.graph.grow(nu, ni)
        if ni > self.item_text.shape[0]:
            extra = ni - self.item_text.shape[0]
            self.item_text = torch.cat([self.item_text, self.item_text.new_zeros(extra, self.item_text.shape[1])])
            self.has_text = torch.cat([self.has_text, self.has_text.new_zeros(extra)])
        for name in ("_item_proj", "_item_vecs"):
            t = getattr(self, name, None)
            if t is not None and t.shape[0] < ni:
                setattr(self, name, torch.cat([t, t.new_zeros(ni - t.shape[0], t.shape[1])]))

    def add_items(self, ids: Sequence[str], text_emb: Tensor) -> Tensor:
        """Publish (or re-text) items: (k,) ids with text embeddings (k, Dt). Returns their rows."""
        rows = self.item_rows(ids)
        self._grow()
        r = rows.to(self.device)
        self.item_text[r] = text_emb.to(self.device, torch.float32)
        self.has_text[r] = True
        if self._item_proj is not None:
            with torch.no_grad():
                proj = self.model.head.project_item_text(self.item_text[r])
            assert proj is not None
            self._item_proj[r] = proj
        # score a new item by its text right away; its collaborative part arrives with flush()
        with torch.no_grad():
            h = self._prop.item_rows(r) if self._prop is not None else None
            proj_r = self._item_proj[r] if self._item_proj is not None else None
            self._item_vecs[r] = self.model.head.item_vectors_from(h, proj_r, int(r.numel()))
        self._pending_i.extend(rows.tolist())
        return rows

    def learn_interactions(self, user_ids: Sequence[str], item_ids: Sequence[str], weights: Sequence[float] | None = None) -> None:
        u = self.user_rows(user_ids)
        i = self.item_rows(item_ids)
        self.graph.add_interactions(u.numpy(), i.numpy(), None if weights is None else np.asarray(weights))
        self._pending_u.extend(u.tolist())
        self._pending_i.extend(i.tolist())

    def unlearn_interactions(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> None:
        u = self.user_rows(user_ids)
        i = self.item_rows(item_ids)
        self.graph.remove_interactions(u.numpy(), i.numpy())
        self._pending_u.extend(u.tolist())
        self._pending_i.extend(i.tolist())

    def learn_follows(self, src_ids: Sequence[str], dst_ids: Sequence[str]) -> None:
        s = self.user_rows(src_ids)
        d = self.user_rows(dst_ids)
        self.graph.add_social(s.numpy(), d.numpy())
        self._pending_u.extend(s.tolist() + d.tolist())

    def unlearn_follows(self, src_ids: Sequence[str], dst_ids: Sequence[str]) -> None:
        s = self.user_rows(src_ids)
        d = self.user_rows(dst_ids)
        self.graph.remove_social(s.numpy(), d.numpy())
        self._pending_u.extend(s.tolist() + d.tolist())

    @torch.no_grad()
    def flush(self) -> tuple[Tensor, Tensor]:
        """Apply pending changes (k-hop incremental). Returns (changed user rows, changed item rows)."""
        self._grow()
        tu = torch.as_tensor(sorted(set(self._pending_u)), dtype=torch.long)
        ti = torch.as_tensor(sorted(set(self._pending_i)), dtype=torch.long)
        self._pending_u.clear()
        self._pending_i.clear()
        if tu.numel() == 0 and ti.numel() == 0:
            return tu, ti
        ti_d = ti.to(self.device)
        h_i: Tensor | None = None
        if self._prop is None:
            rows = ti_d
            cu = tu
        else:
            x0_i = None
            if self.model.text_in is not None and ti.numel():
                x0_i = self.model.layer0(0, len(self.items), self.item_text)[ti_d]
            cu, ci = self._prop.update(tu, ti, x0_items=x0_i)
            rows = torch.unique(torch.cat([ci, ti_d]))
            h_i = self._prop.item_embeddings[rows]
        if rows.numel():
            proj = self._item_proj[rows] if self._item_proj is not None else None
            self._item_vecs[rows] = self.model.head.item_vectors_from(h_i, proj, int(rows.numel()))
        return cu.cpu(), rows.cpu()

    def swap_model(self, model: FusedRecommender, user_ids: Sequence[str], item_ids: Sequence[str]) -> None:
        """Hot-swap a new snapshot: ids it knows keep/get their trained rows only if they agree with ours."""
        known_u = all(self.users.get(x) == r for r, x in enumerate(user_ids))
        known_i = all(self.items.get(x) == r for r, x in enumerate(item_ids))
        if not (known_u and known_i):
            raise ValueError("snapshot id rows disagree with the serving rows; build a new ServingState")
        self.model = model.to(self.device).eval()
        self._rebuild()

    # --- reading ----------------------------------------------------------------------------------
    def user_vectors(self, rows: Tensor, interest: Tensor) -> Tensor:
        """(B, k) for user rows (B,) and their interest text vectors (B, Dt) (zeros if none)."""
        r = rows.to(self.device)
        h = self._prop.user_rows(r) if self._prop is not None else None
        return self.model.user_vectors(h, interest.to(self.device, torch.float32))

    def item_vectors(self, rows: Tensor | None = None) -> Tensor:
        """(C, k) cached item vectors (all items when ``rows`` is None). Call ``flush`` first."""
        return self._item_vecs if rows is None else self._item_vecs[rows.to(self.device)]

    def score_many(self, user_vecs: Tensor, item_rows: Tensor | None = None) -> Tensor:
        return self.model.score_many(user_vecs, self.item_vectors(item_rows))  # (B, C)

    def rank(
        self, user_rows: Tensor, interest: Tensor, k: int, item_rows: Tensor | None = None,
        exclude: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Top-k (scores (B, k), item rows (B, k)) among ``item_rows`` (default: all with text)."""
        if item_rows is None:
            item_rows = torch.nonzero(self.has_text).squeeze(1)
        item_rows = item_rows.to(self.device)
        uv = self.user_vectors(user_rows, interest)
        scores, cols = self.model.rank(uv, self.item_vectors(item_rows), k, exclude)
        return scores, item_rows[cols]

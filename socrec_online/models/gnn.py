"""Social tower: LightGCN propagation over the joint user-item + user-user graph.

Why LightGCN and not GraphSAGE: on LastFM (RecBole split) the parameter-free propagation
trained with a softmax loss beat a 2-layer SAGEConv tower (see the issue report), and it is
cheap and exactly incrementable: with no weights between hops, a new edge changes only the
rows of the normalised adjacency that touch its endpoints, so the per-layer embeddings can be
updated on the k-hop neighbourhood of the touched nodes and equal a full recompute.

Node layout for a propagation is ``[users | items]`` (item node = n_users + item row). The
graph is growable (users and items append, edges add) so the streaming engine can keep one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.nn.conv import LGConv

from socrec_online.models.adjacency import EdgeStore, GrowingCsr

Weighting = Literal["binary", "log"]

# torch marks sparse CSR as beta and warns on every construction; the adjacency we build is valid by construction
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


@dataclass
class SocialGNNConfig:
    n_layers: int = 2  # message-passing hops
    social_weight: float = 1.0  # weight of a user-user edge relative to a user-item edge
    weighting: Weighting = "binary"  # user-item edge weight: 1, or 1 + log(count) (listen counts)
    self_loops: bool = False  # LightGCN uses none; the layer-0 term in the mean plays that role


class InteractionGraph:
    """Growable user-item + user-user graph with symmetric normalisation D^-1/2 A D^-1/2.

    Edges are unique per pair: re-adding one accumulates its count (the ``log`` weighting
    uses it), so replaying the same interactions never duplicates structure. Social edges are
    undirected (a follow is evidence of shared taste both ways, as in LightGCN-social models).
    """

    def __init__(self, n_users: int, n_items: int, cfg: SocialGNNConfig | None = None) -> None:
        self.cfg = cfg or SocialGNNConfig()
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self._ui = EdgeStore()  # (user, item)
        self._uu = EdgeStore()  # (min user, max user)
        self._adj: GrowingCsr | None = None  # raw weights as CSR, patched with the edges changed since
        self._changed: set[tuple[bool, int, int]] = set()  # (social, a, b) edges changed since the last Â
        self._csr: Tensor | None = None
        self._parts: tuple[Tensor, Tensor, Tensor] | None = None  # rowptr, col, val (normalised)
        self._item_users = np.zeros(self.n_items, np.int64)  # each item's users (its user-item edges)

    # --- building -----------------------------------------------------------------------
    def grow(self, n_users: int, n_items: int) -> None:
        if n_users > self.n_users or n_items > self.n_items:
            self.n_users = max(self.n_users, int(n_users))
            self.n_items = max(self.n_items, int(n_items))
            self._invalidate()

    def add_interactions(self, users: np.ndarray, items: np.ndarray, weights: np.ndarray | None = None) -> None:
        users = np.asarray(users, np.int64).reshape(-1)
        items = np.asarray(items, np.int64).reshape(-1)
        if users.size == 0:
            return
        w = np.ones(users.shape[0], np.float64) if weights is None else np.asarray(weights, np.float64).reshape(-1)
        self.grow(int(users.max()) + 1, int(items.max()) + 1)
        binary = self.cfg.weighting == "binary"
        for u, i, x in zip(users.tolist(), items.tolist(), w.tolist(), strict=True):
            if not (binary and (u, i) in self._ui.slot):  # binary weights: a repeat changes nothing
                self._changed.add((False, u, i))
            if self._ui.add(u, i, max(float(x), 1e-6)):
                self._count_user(i, 1)
        self._stale()

    def remove_interactions(self, users: np.ndarray, items: np.ndarray) -> None:
        for u, i in zip(np.asarray(users).tolist(), np.asarray(items).tolist(), strict=True):
            if self._ui.remove(int(u), int(i)):
                self._changed.add((False, int(u), int(i)))
                self._count_user(int(i), -1)
        self._stale()

    def _count_user(self, item: int, step: int) -> None:
        if item >= self._item_users.shape[0]:
            self._item_users = np.concatenate([self._item_users, np.zeros(max(self.n_items, item + 1)
                                                                          - self._item_users.shape[0], np.int64)])
        self._item_users[item] += step

    def item_degree(self, rows: Tensor | None = None) -> Tensor:
        """Each item's users in the graph (float (I,), or (len(rows),) for item ``rows``): its
        popularity, for the popularity term (``models/prior.py``)."""
        have = self._item_users
        idx = np.arange(self.n_items) if rows is None else rows.cpu().numpy().astype(np.int64)
        deg = np.zeros(idx.shape[0], np.float32)
        ok = idx < have.shape[0]
        deg[ok] = have[idx[ok]]
        return torch.from_numpy(deg)

    def add_social(self, src: np.ndarray, dst: np.ndarray) -> None:
        src = np.asarray(src, np.int64).reshape(-1)
        dst = np.asarray(dst, np.int64).reshape(-1)
        if src.size == 0:
            return
        self.grow(int(max(src.max(), dst.max())) + 1, self.n_items)
        for a, b in zip(src.tolist(), dst.tolist(), strict=True):
            if a != b and (min(a, b), max(a, b)) not in self._uu.slot:
                self._uu.add(min(a, b), max(a, b), 1.0)
                self._changed.add((True, min(a, b), max(a, b)))
        self._stale()

    def remove_social(self, src: np.ndarray, dst: np.ndarray) -> None:
        for a, b in zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), strict=True):
            key = (min(int(a), int(b)), max(int(a), int(b)))
            if self._uu.remove(*key):
                self._changed.add((True, *key))
        self._stale()

    def _stale(self) -> None:
        """Edges changed: Â is patched from the raw adjacency at the next :meth:`normalized_csr`."""
        if self._changed:
            self._invalidate()

    def _invalidate(self) -> None:
        self._csr = None
        self._parts = None

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def n_edges(self) -> int:
        """Undirected edges (user-item + user-user)."""
        return len(self._ui) + len(self._uu)

    def edge_index(self) -> tuple[Tensor, Tensor]:
        """Directed (2, E) edge index over ``[users | items]`` and edge weights (E,)."""
        nu = self.n_users
        uu_a, uu_b, _ = self._uu.alive()
        ui_u, ui_i, cnt = self._ui.alive()
        w_ui = np.ones_like(cnt) if self.cfg.weighting == "binary" else 1.0 + np.log(np.maximum(cnt, 1.0))
        w_uu = np.full(uu_a.shape[0], self.cfg.social_weight)
        src = np.concatenate([ui_u, ui_i + nu, uu_a, uu_b])
        dst = np.concatenate([ui_i + nu, ui_u, uu_b, uu_a])
        w = np.concatenate([w_ui, w_ui, w_uu, w_uu])
        if self.cfg.self_loops:
            loops = np.arange(self.n_nodes)
            src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
            w = np.concatenate([w, np.ones(self.n_nodes)])
        return torch.as_tensor(np.stack([src, dst])), torch.as_tensor(w, dtype=torch.float32)

    def normalized_csr(self, device: torch.device | str = "cpu") -> Tensor:
        """Â = D^-1/2 A D^-1/2 as a torch sparse CSR (N, N); rows = destination nodes.

        Built once from the edge list, then patched with the edges changed since (a micro-batch
        changes few edges: see ``models/adjacency.py``); a change touching over a quarter of
        the entries rebuilds.
        """
        if self._csr is None or self._csr.device != torch.device(device):
            adj = self._adj
            if adj is None or 2 * len(self._changed) > adj.nnz // 4:
                ei, w = self.edge_index()
                adj = GrowingCsr(self.n_users, self.n_items, ei[0].numpy(), ei[1].numpy(), w.numpy())
            else:
                adj.grow(self.n_users, self.n_items)
                a, b, wt = self._changed_weights()
                adj.patch(a, b, wt)
            self._adj = adj
            self._changed.clear()
            self._csr = adj.normalised(device)
            self._parts = (self._csr.crow_indices(), self._csr.col_indices(), self._csr.values())
        return self._csr

    def _changed_weights(self) -> tuple[list[int], list[int], list[float]]:
        """The changed edges as node pairs and their current weight (0: removed), as ``edge_index``."""
        nu, binary = self.n_users, self.cfg.weighting == "binary"
        a, b, w = [], [], []
        for social, x, y in self._changed:
            store = self._uu if social else self._ui
            s = store.slot.get((x, y))
            if social:
                wt = self.cfg.social_weight if s is not None else 0.0
            else:
                cnt = float(store.cnt[s]) if s is not None else 0.0
                wt = 0.0 if cnt <= 0 else 1.0 if binary else 1.0 + float(np.log(max(cnt, 1.0)))
            a.append(x)
            b.append(y if social else nu + y)
            w.append(float(np.float32(wt)))  # edge_index's weights are float32 too
        return a, b, w

    def neighbours(self, nodes: Tensor, device: torch.device | str = "cpu") -> Tensor:
        """Unique one-hop neighbours of ``nodes`` (unified ids), including the nodes themselves."""
        self.normalized_csr(device)
        assert self._parts is not None
        rowptr, col, _ = self._parts
        pos, _ = _row_positions(rowptr, nodes)
        return torch.unique(torch.cat([nodes, col[pos]]))

    def rows_times(self, nodes: Tensor, x: Tensor) -> Tensor:
        """Â[nodes, :] @ x without materialising the whole product: (len(nodes), d)."""
        assert self._parts is not None, "call normalized_csr() first"
        rowptr, col, val = self._parts
        pos, local = _row_positions(rowptr, nodes)
        out = x.new_zeros(nodes.shape[0], x.shape[1])
        return out.index_add_(0, local, val[pos].unsqueeze(1) * x[col[pos]])


def _row_positions(rowptr: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Positions of every stored entry of ``rows`` in a CSR, and the local row each belongs to."""
    starts = rowptr[rows]
    lens = rowptr[rows + 1] - starts
    local = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device), lens)
    offsets = torch.cumsum(lens, 0) - lens
    pos = torch.arange(int(lens.sum()), device=rows.device) - offsets[local] + starts[local]
    return pos, local


class LightGCN(nn.Module):
    """Propagation only (no weights): e^(l+1) = Â e^(l); output = mean_l e^(l)."""

    def __init__(self, cfg: SocialGNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv = LGConv(normalize=False)  # Â is pre-normalised once per graph version

    def layers(self, x0: Tensor, adj: Tensor) -> list[Tensor]:
        """All layer outputs [e^0 .. e^L], each (N, d)."""
        out = [x0]
        x = x0
        for _ in range(self.cfg.n_layers):
            x = self.conv(x, adj)  # (N, d)
            out.append(x)
        return out

    def forward(self, x0: Tensor, adj: Tensor) -> Tensor:
        return torch.stack(self.layers(x0, adj)).mean(0)  # (N, d)


class IncrementalPropagator:
    """Keeps every layer's embeddings and updates only the k-hop region touched by new edges.

    Exact: after ``update`` the output equals ``LightGCN.forward`` on the grown graph (the unit
    test checks it). Cost ~ edges incident to the L-hop neighbourhood of the touched nodes.
    """

    def __init__(self, graph: InteractionGraph, x0: Tensor, cfg: SocialGNNConfig | None = None) -> None:
        self.graph = graph
        self.cfg = cfg or graph.cfg
        self.device = x0.device
        self.model = LightGCN(self.cfg)
        with torch.no_grad():
            self.layers = self.model.layers(x0, graph.normalized_csr(self.device))
        self.out = _layer_mean(self.layers)
        self._nu = graph.n_users
        # above this share of the adjacency's entries, a layer is one spmm: gathering costs ~10x more per entry
        self.full_fraction = 0.1

    @property
    def user_embeddings(self) -> Tensor:
        return self.out[: self.graph.n_users]  # (n_users, d)

    @property
    def item_embeddings(self) -> Tensor:
        return self.out[self.graph.n_users :]  # (n_items, d)

    def user_rows(self, rows: Tensor) -> Tensor:
        """(B, d) output rows of users; rows added to the graph since the last update read zero."""
        out = self.out.new_zeros(rows.shape[0], self.out.shape[1])
        m = rows < self._nu
        out[m] = self.out[rows[m]]
        return out

    def item_rows(self, rows: Tensor) -> Tensor:
        """(C, d) output rows of items; rows added since the last update read zero."""
        out = self.out.new_zeros(rows.shape[0], self.out.shape[1])
        m = rows < self.out.shape[0] - self._nu
        out[m] = self.out[self._nu + rows[m]]
        return out

    def _relayout(self) -> None:
        """The graph grew: insert zero rows for new users (before items) and new items (at the end)."""
        g = self.graph
        nu_old = self._nu
        ni_old = self.layers[0].shape[0] - nu_old
        if g.n_users == nu_old and g.n_items == ni_old:
            return
        d = self.layers[0].shape[1]

        def pad(x: Tensor) -> Tensor:
            zu = x.new_zeros(g.n_users - nu_old, d)
            zi = x.new_zeros(g.n_items - ni_old, d)
            return torch.cat([x[:nu_old], zu, x[nu_old:], zi])

        self.layers = [pad(x) for x in self.layers]
        self.out = pad(self.out)
        self._nu = g.n_users

    @torch.no_grad()
    def update(
        self,
        touched_users: Tensor,
        touched_items: Tensor,
        x0_users: Tensor | None = None,
        x0_items: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Recompute after edges were added to ``graph`` (and optionally new layer-0 rows).

        ``touched_*``: rows whose edges or layer-0 input changed. ``x0_*``: (len(touched), d)
        new layer-0 rows for them (e.g. a new user's default/ID embedding); None keeps them.
        Returns (changed user rows, changed item rows) whose output embedding was recomputed.
        """
        g = self.graph
        self._relayout()
        nu = g.n_users
        dev = self.device
        tu = touched_users.to(dev, torch.long)
        ti = touched_items.to(dev, torch.long)
        if x0_users is not None:
            self.layers[0][tu] = x0_users.to(dev)
        if x0_items is not None:
            self.layers[0][ti + nu] = x0_items.to(dev)
        changed = torch.unique(torch.cat([tu, ti + nu]))
        g.normalized_csr(dev)
        adj = g.normalized_csr(dev)
        n = g.n_nodes
        full = False
        rowptr = adj.crow_indices()
        nnz = max(int(rowptr[-1]), 1)
        for layer in range(1, self.cfg.n_layers + 1):
            if not full:
                changed = g.neighbours(changed, dev)  # the rows whose layer-`layer` value changes
                # entries gathering them reads; past a fraction of nnz one spmm is cheaper
                touched = int((rowptr[changed + 1] - rowptr[changed]).sum())
                full = touched > self.full_fraction * nnz
            if full:  # most rows change: one sparse product beats gathering rows
                self.layers[layer] = self.model.conv(self.layers[layer - 1], adj)
            else:
                self.layers[layer][changed] = g.rows_times(changed, self.layers[layer - 1])
        if full:
            changed = torch.arange(n, device=dev)
            self.out = _layer_mean(self.layers)
        else:
            self.out[changed] = torch.stack([x[changed] for x in self.layers]).mean(0)
        return changed[changed < nu], changed[changed >= nu] - nu


def _layer_mean(layers: list[Tensor]) -> Tensor:
    """mean_l e^(l) (N, d), summed in place (stacking would copy every layer first)."""
    out = layers[0].clone()
    for x in layers[1:]:
        out.add_(x)
    return out.div_(len(layers))


def build_graph(
    n_users: int,
    n_items: int,
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray | None,
    social_src: np.ndarray,
    social_dst: np.ndarray,
    cfg: SocialGNNConfig,
) -> InteractionGraph:
    g = InteractionGraph(n_users, n_items, cfg)
    g.add_interactions(users, items, weights)
    g.add_social(social_src, social_dst)
    return g

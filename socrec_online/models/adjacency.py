"""The normalised adjacency of a growing graph, patched in place instead of rebuilt per batch.

The LightGCN tower propagates with Â = D^-1/2 A D^-1/2, where A is the symmetric weighted
adjacency over ``[users | items]`` and ``D_vv = sum_w A_vw``. A micro-batch changes a handful
of edges of a graph with many, but a rebuild from the edge list sorts every entry (O(E log E)
per batch). :class:`GrowingCsr` keeps the raw weights of A in CSR form (rows = destination
nodes) and applies a batch's edge changes as deletions and insertions at the end of their rows
(memory moves, no sort), then recomputes D and every value of Â in a few vectorised passes:

    deg(v) = sum_{(v, w) in A} a_vw,    Â_vw = a_vw / sqrt(deg(v) deg(w))   (0 where deg = 0)

so the patched Â equals a rebuild's, up to the order of entries within a row (a float sum
order, nothing more). New users are inserted before the items (node layout ``[users | items]``),
so the item columns shift when users grow. :class:`EdgeStore` holds the unique edges (and their
accumulated counts) the adjacency is built from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


class GrowingCsr:
    """Raw weights of a symmetric adjacency as CSR (numpy), and its normalised torch CSR."""

    def __init__(self, n_users: int, n_items: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> None:
        """Build from directed entries (both directions of every undirected edge, unique pairs)."""
        self.n_users, self.n_items = int(n_users), int(n_items)
        n = self.n_users + self.n_items
        # edges are unique by construction, so a stable sort by row is all a CSR needs (no coalesce)
        order = np.argsort(dst, kind="stable")
        self.rowptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(dst, minlength=n), out=self.rowptr[1:])
        self.col = np.asarray(src, np.int64)[order]
        self.w = np.asarray(w, np.float64)[order]

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def nnz(self) -> int:
        return int(self.col.shape[0])

    def grow(self, n_users: int, n_items: int) -> None:
        """Empty rows for new users (before the items, whose columns shift) and new items (at the end)."""
        du, di = int(n_users) - self.n_users, int(n_items) - self.n_items
        if du <= 0 and di <= 0:
            return
        du, di = max(du, 0), max(di, 0)
        nu = self.n_users
        if du:
            self.col = np.where(self.col >= nu, self.col + du, self.col)
        rp = self.rowptr
        self.rowptr = np.concatenate([rp[: nu + 1], np.full(du, rp[nu]), rp[nu + 1 :], np.full(di, rp[-1])])
        self.n_users += du
        self.n_items += di

    def patch(self, a: Sequence[int], b: Sequence[int], w: Sequence[float]) -> None:
        """Set the weight of undirected edges (a[k], b[k]) (node ids) to w[k]; 0 removes the edge.

        Each pair at most once; an unchanged weight is a no-op. Both directed entries change.
        """
        if not len(a):
            return
        rows = np.concatenate([np.asarray(a, np.int64), np.asarray(b, np.int64)])
        cols = np.concatenate([np.asarray(b, np.int64), np.asarray(a, np.int64)])
        new_w = np.concatenate([np.asarray(w, np.float64)] * 2)
        pos = self._find(rows, cols)  # (2k,) entry of each (row, col), -1 = absent
        have = pos >= 0
        upd = have & (new_w > 0)
        self.w[pos[upd]] = new_w[upd]
        dele = pos[have & (new_w <= 0)]
        ins = ~have & (new_w > 0)
        if not dele.size and not ins.any():
            return
        n = self.n_nodes
        rp = self.rowptr
        if dele.size:
            row_of = np.searchsorted(rp, dele, side="right") - 1  # the row each deleted entry is in
            self.col = np.delete(self.col, dele)
            self.w = np.delete(self.w, dele)
            rp = rp.copy()
            rp[1:] -= np.cumsum(np.bincount(row_of, minlength=n))
        if ins.any():
            order = np.argsort(rows[ins], kind="stable")  # rows sharing an insertion point (empty rows) in order
            r_ins = rows[ins][order]
            at = rp[r_ins + 1]  # the end of the row (after the deletions)
            self.col = np.insert(self.col, at, cols[ins][order])
            self.w = np.insert(self.w, at, new_w[ins][order])
            rp = rp.copy() if rp is self.rowptr else rp
            rp[1:] += np.cumsum(np.bincount(r_ins, minlength=n))
        self.rowptr = rp

    def _find(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Entry positions of (rows[k], cols[k]) pairs, -1 where absent (vectorised row scan)."""
        rp = self.rowptr
        urows = np.unique(rows)
        starts, lens = rp[urows], rp[urows + 1] - rp[urows]
        total = int(lens.sum())
        if total == 0:
            return np.full(rows.shape[0], -1, np.int64)
        local = np.repeat(np.arange(urows.shape[0]), lens)
        entry = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens) + starts[local]
        n = np.int64(self.n_nodes)
        keys = urows[local] * n + self.col[entry]  # sorted by row, not by column within a row
        order = np.argsort(keys, kind="stable")
        keys, entry = keys[order], entry[order]
        want = rows * n + cols
        at = np.minimum(np.searchsorted(keys, want), total - 1)
        return np.where(keys[at] == want, entry[at], -1)

    def normalised(self, device: torch.device | str = "cpu") -> Tensor:
        """Â as a torch sparse CSR (N, N), rows = destination nodes."""
        n = self.n_nodes
        counts = np.diff(self.rowptr)
        row = np.repeat(np.arange(n), counts)
        deg = np.bincount(row, weights=self.w, minlength=n)
        dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
        val = dinv[row] * self.w * dinv[self.col]
        return torch.sparse_csr_tensor(
            torch.from_numpy(self.rowptr.copy()),
            torch.from_numpy(self.col.copy()),
            torch.as_tensor(val, dtype=torch.float32),
            size=(n, n),
        ).to(device)


class EdgeStore:
    """Unique undirected edges in growable arrays (key -> slot), with accumulated counts."""

    def __init__(self) -> None:
        self.slot: dict[tuple[int, int], int] = {}
        self.a = np.zeros(1024, np.int64)
        self.b = np.zeros(1024, np.int64)
        self.cnt = np.zeros(1024, np.float64)  # 0 = removed
        self.n = 0

    def add(self, a: int, b: int, w: float) -> bool:
        """Add ``w`` to the edge's count; True when the edge is new."""
        s = self.slot.get((a, b))
        new = s is None
        if s is None:
            if self.n == self.a.shape[0]:
                cap = 2 * self.n
                self.a = np.resize(self.a, cap)
                self.b = np.resize(self.b, cap)
                self.cnt = np.resize(self.cnt, cap)
            s = self.n
            self.slot[(a, b)] = s
            self.a[s], self.b[s], self.cnt[s] = a, b, 0.0
            self.n += 1
        self.cnt[s] += w
        return new

    def remove(self, a: int, b: int) -> bool:
        s = self.slot.pop((a, b), None)
        if s is None:
            return False
        self.cnt[s] = 0.0
        return True

    def alive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.cnt[: self.n] > 0
        return self.a[: self.n][m], self.b[: self.n][m], self.cnt[: self.n][m]

    def __len__(self) -> int:
        return len(self.slot)

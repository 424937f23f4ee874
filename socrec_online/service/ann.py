"""The approximate-nearest-neighbour index over item text vectors (faiss HNSW, inner product).

Built only once the catalogue passes ``ann_threshold`` live items (below it every live item is a
candidate), and kept up to date incrementally: HNSW cannot delete, so an item whose text changed
gets a new entry and its old entry becomes a tombstone, and so does an evicted item's. Searches
ask for enough more neighbours to make up for the tombstones and drop them::

    k' = ceil(k * entries / live) + SEARCH_SLACK

The index is rebuilt from the live items only when tombstones pass half its entries (so ``k'`` stays
under ``2k + SEARCH_SLACK`` and a rebuild is paid for by as many edits as the index holds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from socrec_online import metrics
from socrec_online.service.store import Store

SEARCH_SLACK = 8
"""Neighbours asked for beyond those the tombstones may take (HNSW is approximate anyway)."""


class AnnIndex:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.index: Any | None = None
        self.entry_row = np.zeros(0, np.int64)  # index entry -> item row, -1 = tombstone
        self.row_entry: dict[int, int] = {}  # item row -> its live entry
        self.rebuilds = 0

    @property
    def built(self) -> bool:
        return self.index is not None

    @property
    def n(self) -> int:
        """Live (searchable) items in the index."""
        return len(self.row_entry)

    @property
    def tombstones(self) -> int:
        return int(self.entry_row.shape[0]) - len(self.row_entry)

    def add(self, changed: Iterable[int] = ()) -> None:
        """Index the items whose rows are new or whose vector changed (``changed``), or build the index
        from every live item once the catalogue passes the threshold."""
        st = self.store
        if st.n_live_items <= st.settings.ann_threshold:
            if self.index is not None:  # shrank below it (evictions): candidates are every live item
                self._clear()
            return
        if self.index is None:
            self._build()
            return
        rows = sorted({int(r) for r in changed if st.items.id(int(r)) in st.item_state})
        self.remove(rows)
        if rows:
            self._append(np.asarray(rows, np.int64))
        if self.tombstones > self.n:
            self._build()
        metrics.ANN_ITEMS.set(self.n)

    def remove(self, rows: Iterable[int]) -> None:
        """The entries of these item rows become tombstones (evicted, or about to be re-added)."""
        for r in rows:
            e = self.row_entry.pop(int(r), None)
            if e is not None:
                self.entry_row[e] = -1

    def _clear(self) -> None:
        self.index = None
        self.entry_row = np.zeros(0, np.int64)
        self.row_entry = {}
        metrics.ANN_ITEMS.set(0)

    def _build(self) -> None:
        import faiss

        st = self.store
        self._clear()
        self.index = faiss.IndexHNSWFlat(st.dim, 32, faiss.METRIC_INNER_PRODUCT)
        rows = np.asarray(st.items.rows(list(st.item_state)), np.int64)
        self._append(np.sort(rows))
        self.rebuilds += 1
        metrics.ANN_ITEMS.set(self.n)

    def _append(self, rows: np.ndarray) -> None:
        assert self.index is not None
        if not rows.size:
            return
        x = self.store.item_emb[rows].detach().float().cpu().numpy()
        first = int(self.entry_row.shape[0])
        self.index.add(np.ascontiguousarray(x))
        self.entry_row = np.concatenate([self.entry_row, rows])
        self.row_entry.update(zip(rows.tolist(), range(first, first + rows.shape[0]), strict=True))

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """Item rows of the ``k`` nearest live items of each query row (-1 pads)."""
        assert self.index is not None
        total = int(self.entry_row.shape[0])
        live = max(self.n, 1)
        want = min(total, math.ceil(k * total / live) + SEARCH_SLACK if self.tombstones else k)
        _, idx = self.index.search(np.ascontiguousarray(q), want)
        idx = np.asarray(idx)
        rows = np.where(idx >= 0, self.entry_row[np.maximum(idx, 0)], -1)
        if not self.tombstones:
            return rows
        # keep the first k live rows of each query, in order
        ok = rows >= 0
        rank = np.cumsum(ok, axis=1) - 1
        out = np.full((rows.shape[0], min(k, want)), -1, np.int64)
        bi, ji = np.nonzero(ok & (rank < out.shape[1]))
        out[bi, rank[bi, ji]] = rows[bi, ji]
        return out

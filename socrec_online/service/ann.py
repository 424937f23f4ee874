"""The approximate-nearest-neighbour index over item text vectors (faiss HNSW, inner product).

Built only once the catalogue passes ``ann_threshold`` items (below it every live item is a
candidate); new items are appended, and a changed item text rebuilds it at the next add.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from socrec_online import metrics
from socrec_online.service.store import Store


class AnnIndex:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.index: Any | None = None
        self.n = 0  # items indexed (rows 0..n-1)
        self.stale = False  # an indexed vector changed: rebuild at the next add

    @property
    def built(self) -> bool:
        return self.index is not None

    def add(self) -> None:
        """Index the items added since the last call (everything again when stale)."""
        st = self.store
        n = len(st.items)
        if n <= st.settings.ann_threshold:
            return
        import faiss

        if self.index is None or self.stale:
            self.index = faiss.IndexHNSWFlat(st.dim, 32, faiss.METRIC_INNER_PRODUCT)
            self.n = 0
            self.stale = False
        if n > self.n:
            x = st.item_emb[self.n : n].detach().float().cpu().numpy()
            self.index.add(np.ascontiguousarray(x))
            self.n = n
        metrics.ANN_ITEMS.set(self.n)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """Item rows of the ``k`` nearest items of each query row (-1 pads)."""
        assert self.index is not None
        _, idx = self.index.search(np.ascontiguousarray(q), min(k, self.n))
        return np.asarray(idx)

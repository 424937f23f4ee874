"""The served model on a growing graph: the streaming engine's view of a trained recommender.

:class:`ServingState` owns the growable graph, keeps every LightGCN layer, and after a batch of new
edges recomputes only the k-hop region they touch (``IncrementalPropagator``), so users and items
that did not exist at training time are scored inductively: unknown nodes start from a zero ID
embedding and get their vector from their neighbourhood and their text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from socrec_online.idmap import IdMap
from socrec_online.models.gnn import IncrementalPropagator, InteractionGraph
from socrec_online.models.recommender import FusedRecommender


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
        self._item_vecs = self.model.head.item_vectors_from(
            h_i, self._item_proj, len(self.items), self._item_users())

    def _item_users(self, rows: Tensor | None = None) -> Tensor | None:
        """The items' users in the graph for the popularity column; None for a model without one."""
        return self.graph.item_degree(rows) if self.model.cfg.pop_prior else None

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
            self._item_vecs[r] = self.model.head.item_vectors_from(h, proj_r, int(r.numel()),
                                                                   self._item_users(r))
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
            self._item_vecs[rows] = self.model.head.item_vectors_from(
                h_i, proj, int(rows.numel()), self._item_users(rows))
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

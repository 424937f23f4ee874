"""The trained fused model behind the engine: M's inductive ``ServingState`` fed by the engine's batches.

The engine stays the owner of truth (tables, filters, reasons); this adapter mirrors its graph
into the model's growable interaction graph and answers ``score_users_items`` with the fused
head's logits, so a snapshot swap changes the scores and nothing else a user relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from socrec_online.service.batch import GraphChanges
from socrec_online.service.protocols import GraphView

_UNKNOWN_USER = "\x00unknown"


class FusedScorer:
    """A loaded snapshot, attached to one engine (one per worker; not thread-safe)."""

    def __init__(
        self, model: Any, user_ids: Sequence[str], item_ids: Sequence[str], text: Any | None = None
    ) -> None:
        self.model = model
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self.text = text  # the snapshot's own (LoRA-adapted) text tower for item texts; None = the engine's
        self.state: Any | None = None
        self._item_row_map = np.zeros(0, np.int64)  # engine item row -> serving row

    @classmethod
    def load(cls, path: str | Path, encoder: Any | None = None) -> FusedScorer:
        """Verify and load a snapshot directory (checksums checked by the snapshot module).

        A snapshot fine-tuned with LoRA on the text tower carries its adapters: they go on a copy
        of ``encoder`` (the engine's stays untouched: the zero-shot features keep their vectors).
        """
        from socrec_online.models.recommender import load_recommender

        model, users, items, manifest = load_recommender(path)
        text = None
        lora_cfg = manifest.get("config", {}).get("text_lora")
        if lora_cfg:
            text = _adapted_encoder(path, encoder, lora_cfg)
        return cls(model, users, items, text)

    def _item_text(self, engine: GraphView, ids: Sequence[str], rows: Tensor) -> Tensor:
        """(n, Dt) text vectors of engine items: the engine's, or re-encoded by the adapted tower."""
        if self.text is None:
            return engine.item_emb[rows]
        return self._encode(_texts_of(engine, ids), engine.device)

    def _encode(self, texts: Sequence[str], device: torch.device) -> Tensor:
        return self.text.encode(list(texts)).to(device, torch.float32)  # type: ignore[union-attr,no-any-return]

    def attach(self, engine: GraphView) -> None:
        """Build the serving graph from the engine's current state (start, restore)."""
        self.build(capture_graph(engine))

    def build(self, g: GraphCopy) -> None:
        """Build the serving graph from a copy of the engine's graph.

        Touches nothing of the engine, so a hot swap runs it on a thread while the engine serves,
        then replays the batches applied meanwhile (:meth:`catch_up`) and swaps a reference.
        """
        from socrec_online.models.serving import ServingState

        cfg = self.model.cfg
        if int(cfg.text_dim) != g.dim:
            raise ValueError(f"snapshot expects {cfg.text_dim}-d text vectors, the text tower gives {g.dim}")
        st = ServingState(self.model, self.user_ids, self.item_ids, device=g.device)
        if g.item_ids:
            vecs = g.item_vectors if self.text is None else self._encode(g.item_texts, g.device)
            st.add_items(g.item_ids, vecs)
        if g.users:
            st.learn_interactions(g.users, g.items)
        if g.follow_src:
            st.learn_follows(g.follow_src, g.follow_dst)
        st.user_rows([_UNKNOWN_USER])
        st.flush()
        self.state = st
        self._item_row_map = np.asarray(st.items.rows(g.item_ids), np.int64)

    def catch_up(self, engine: GraphView, batches: Sequence[GraphChanges]) -> None:
        """Apply the graph changes of the batches the engine applied since its graph was copied
        (one propagation for all of them: the update is exact whatever the grouping)."""
        st = self.state
        if st is None:
            return
        for changes in batches:
            self._record(engine, changes)
        st.flush()
        self._extend_row_map(engine)

    def learn_batch(self, engine: GraphView, changes: GraphChanges) -> None:
        if self.state is None or not changes:
            return
        self._record(engine, changes)
        self.state.flush()
        self._extend_row_map(engine)

    def _record(self, engine: GraphView, changes: GraphChanges) -> None:
        """Hand a batch's items and edge changes to the serving graph (propagated at its next flush)."""
        st = self.state
        if st is None or not changes:
            return
        if changes.item_ids:
            rows = torch.as_tensor(changes.item_rows, dtype=torch.long, device=engine.device)
            st.add_items(changes.item_ids, self._item_text(engine, changes.item_ids, rows))
        pos = [(u, i) for (u, i), w in changes.engaged.items() if w > 0]
        neg = [(u, i) for (u, i), w in changes.engaged.items() if w <= 0]
        if pos:
            st.learn_interactions([u for u, _ in pos], [i for _, i in pos])
        if neg:
            st.unlearn_interactions([u for u, _ in neg], [i for _, i in neg])
        add = [(s, d) for s, d, undo in changes.follows if not undo]
        # a follow edge is undirected here: an unfollow removes it only if the other side does not follow
        # back (checked on the engine's current state, which is also right when catching up: the pair's
        # last event decides, as a rebuild from the engine's graph would)
        rem = [(s, d) for s, d, undo in changes.follows if undo and not _follows(engine, d, s)]
        if add:
            st.learn_follows([s for s, _ in add], [d for _, d in add])
        if rem:
            st.unlearn_follows([s for s, _ in rem], [d for _, d in rem])

    def _extend_row_map(self, engine: GraphView) -> None:
        """Serving rows of the engine items added since the map was last extended."""
        st = self.state
        n = len(engine.items)
        if st is not None and n > self._item_row_map.shape[0]:
            new = st.items.rows(engine.items.ids(range(self._item_row_map.shape[0], n)))
            self._item_row_map = np.concatenate([self._item_row_map, np.asarray(new, np.int64)])

    @torch.no_grad()
    def score_users_items(
        self, engine: GraphView, rows: np.ndarray, cand: np.ndarray, now: float, interest: Tensor | None = None
    ) -> Tensor:
        """Fused logits (B, C) for engine user rows (-1 = unknown user) and engine item rows.

        ``interest`` (B, Dt) replaces the users' interest vectors.
        """
        st = self.state
        if st is None:
            self.attach(engine)
            st = self.state
        assert st is not None
        uids = [engine.users.id(int(r)) if r >= 0 else _UNKNOWN_USER for r in rows]
        s_rows = st.user_rows(uids)
        if interest is None:
            interest = torch.zeros(len(rows), engine.dim, device=engine.device)
            known = rows >= 0
            if known.any():
                idx = torch.from_numpy(np.nonzero(known)[0]).to(engine.device)
                interest[idx] = engine.interest[torch.from_numpy(rows[known]).to(engine.device)]
        uv = st.user_vectors(s_rows, interest)  # (B, k)
        i_rows = torch.from_numpy(self._item_row_map[cand]).to(engine.device)
        return st.score_many(uv, i_rows).float()  # type: ignore[no-any-return]  # (B, C)


@dataclass(frozen=True)
class GraphCopy:
    """What :meth:`FusedScorer.build` reads of the engine, copied in one engine call (cheap: lists
    of ids and one tensor clone), so the build itself can run off the engine's thread."""

    dim: int
    device: torch.device
    item_ids: list[str]
    item_vectors: Tensor  # (n, Dt), the engine's text vectors of item_ids
    item_texts: list[str]  # for a snapshot with its own (LoRA) text tower
    users: list[str] = field(default_factory=list)  # engaged (user, item) pairs with positive weight
    items: list[str] = field(default_factory=list)
    follow_src: list[str] = field(default_factory=list)
    follow_dst: list[str] = field(default_factory=list)


def capture_graph(engine: GraphView) -> GraphCopy:
    """Copy the engine's items, positive engagements and follows (see :class:`GraphCopy`)."""
    n = len(engine.items)
    ids = list(engine.items.all_ids) if n else []
    texts = _texts_of(engine, ids)
    users, items = [], []
    for uid, act in engine.activity.items():
        for iid, e in act.recent.items():
            if e[0] > 0 and iid in engine.item_state:  # not an evicted item (its row waits for a compaction)
                users.append(uid)
                items.append(iid)
    src, dst = [], []
    for uid, soc in engine.social.items():
        for t in soc.following:
            src.append(uid)
            dst.append(t)
    vecs = engine.item_emb[:n].clone()
    return GraphCopy(engine.dim, engine.device, ids, vecs, texts, users, items, src, dst)


def _follows(engine: GraphView, src: str, dst: str) -> bool:
    soc = engine.social.get(src)
    return soc is not None and dst in soc.following


def _texts_of(engine: GraphView, ids: Sequence[str]) -> list[str]:
    """The engine's current text of each item ("" for an item it has no state for)."""
    return [st.text if (st := engine.item_state.get(i)) is not None else "" for i in ids]


def _adapted_encoder(path: str | Path, encoder: Any | None, lora_cfg: dict[str, Any]) -> Any:
    """A copy of the engine's text tower with the snapshot's LoRA adapters loaded."""
    import dataclasses

    from socrec_online.models.lora import add_lora, load_lora_state_dict
    from socrec_online.models.text import TextEncoder
    from socrec_online.snapshot_lora import read_lora

    cfg = getattr(encoder, "cfg", None)
    if cfg is None:
        raise ValueError("this snapshot adapts the text tower (LoRA); it needs the engine's TextEncoder")
    tensors = read_lora(path)
    if tensors is None:
        raise ValueError("manifest announces text_lora but the snapshot has no LoRA file")
    text = TextEncoder(dataclasses.replace(cfg, quantize=False, dtype="float32" if cfg.quantize else cfg.dtype))
    add_lora(text, r=int(lora_cfg.get("r", 4)), alpha=int(lora_cfg.get("alpha", 8)))
    load_lora_state_dict(text, tensors)
    return text

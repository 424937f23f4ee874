"""Typed contracts between the engine and its neighbours, so none of them holds ``Any`` or reads
private fields: the text tower the engine uses, the engine state a serving model reads, the serving
model itself, and the engine the stream layer (``streams/``) drives, in-process or remote."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from socrec_online.events import Event
from socrec_online.idmap import IdMap
from socrec_online.service.state import ActivityState, ItemState, Position, SocialState


class TextEncoderLike(Protocol):
    """What the engine needs from the text tower (socrec_online.models.text.TextEncoder)."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], progress: bool = False) -> Tensor: ...  # (N, dim) normalised


class GraphView(Protocol):
    """The engine state a serving model reads (``service/store.py`` provides it): ids, raw state,
    the text vectors of items and the users' interest vectors, rows aligned with the id maps."""

    dim: int
    device: torch.device
    items: IdMap
    users: IdMap
    item_state: dict[str, ItemState]
    social: dict[str, SocialState]
    activity: dict[str, ActivityState]
    item_emb: Tensor  # (I, D)
    interest: Tensor  # (U, D)


class ServingModel(Protocol):
    """A trained model the engine scores with (``service/fused.py``'s ``FusedScorer``).

    It may also have ``attach(view)`` (build its graph from the current state: at a swap and after a
    restore) and ``learn_batch(view, changes)`` (follow each batch); the engine calls them when present.
    """

    def score_users_items(self, view: GraphView, rows: np.ndarray, cand: np.ndarray, now: float) -> Tensor: ...


class WorkerEngine(Protocol):
    """What the stream layer calls on its engine: ``Engine`` in-process or ``RemoteEngine``."""

    TABLES: ClassVar[tuple[str, ...]]

    @property
    def model_version(self) -> str: ...

    @property
    def next_model_version(self) -> str: ...

    def step(
        self, events: Sequence[Event], now: float | None = None, positions: Sequence[Position | None] | None = None
    ) -> dict[str, Any]: ...

    def restore(self, tables: Mapping[str, Mapping[str, Any]]) -> None: ...

    def upsert(self, values: Mapping[str, Mapping[str, Any]]) -> dict[str, int]: ...

    def knows_item(self, item_id: str | None) -> bool: ...

    def stats(self) -> dict[str, int]: ...

    def recommend_now(self, user_id: str, kind: Any = "items") -> dict[str, Any] | None: ...

    def answer_now(self, user_id: str, text: str, k: int | None = None) -> dict[str, Any] | None: ...

    def load_snapshot(self, path: str) -> str: ...

    def stage_snapshot(self, path: str) -> str: ...

    def swap_outcome(self, version: str) -> str | None: ...

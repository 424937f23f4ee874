"""Evaluate the serving engine itself: replay part of a dataset into it, ask it for top-k, score.

The offline harness (eval/harness.py) ranks with trained models; users are served by the
engine (zero-shot until a snapshot is promoted). The natural-language benches (cold start,
sentiment ablation) therefore replay typed events into a real :class:`Engine` and score what
``recommend_many`` publishes, with the harness's metric definitions (RecBole: Recall@k =
hits / |held-out|). The popularity fallback is ranked on exactly the replayed interactions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from socrec_online.data.base import CommentRow, Dataset, Interactions
from socrec_online.engagement import W_CLICK, W_LIKE, Kind
from socrec_online.eval.metrics import topk_metrics_from_hits
from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile
from socrec_online.settings import Settings

KS = (10, 20)
WIDE_TTL_S = 100 * 365 * 86400.0  # held-out targets span the whole timeline: no item expires


@dataclass
class Replay:
    """The part of a dataset the engine is shown (rows of the dataset's id maps)."""

    inter: Interactions
    comments: list[CommentRow] = field(default_factory=list)
    follow_mask: np.ndarray | None = None  # (E,) bool over ds.social_src; None = every edge
    profiles: dict[int, str] = field(default_factory=dict)
    item_mask: np.ndarray | None = None  # (I,) bool: items published; None = every item
    interaction_ts: float | None = None  # untimed data (LastFM listening pairs): one shared time


def events_of(ds: Dataset, rp: Replay) -> list[Event]:
    """Typed events in causal order: items, follows, profiles, then interactions and comments by time."""
    out: list[Event] = []
    item_ts = ds.item_ts if ds.item_ts is not None else np.zeros(ds.n_items)
    for row in np.argsort(item_ts, kind="stable").tolist():
        if rp.item_mask is not None and not rp.item_mask[row]:
            continue
        out.append(
            ItemPublished(
                f"{ds.name}-item-{row}",
                ds.items.id(row),
                float(item_ts[row]),
                ds.item_text[row],
                ds.item_author[row] if ds.item_author else None,
                ds.item_tags[row] if ds.item_tags else (),
            )
        )
    fm = rp.follow_mask
    for e, (s, d) in enumerate(zip(ds.social_src.tolist(), ds.social_dst.tolist(), strict=True)):
        if (fm is None or fm[e]) and s != d:
            out.append(Follow(f"{ds.name}-follow-{e}", ds.users.id(s), ds.users.id(d), 0.0))
    for u, text in sorted(rp.profiles.items()):
        out.append(Profile(f"{ds.name}-profile-{u}", ds.users.id(u), 0.0, text))
    inter = rp.inter
    ts = np.full(len(inter), rp.interaction_ts) if rp.interaction_ts is not None else inter.ts
    timed: list[tuple[float, int, Event]] = []
    for idx in range(len(inter)):
        uid, iid, t = ds.users.id(int(inter.user[idx])), ds.items.id(int(inter.item[idx])), float(ts[idx])
        ev: Event = (
            Like(f"{ds.name}-like-{idx}", uid, iid, t)
            if inter.kind[idx] == Kind.LIKE
            else Click(f"{ds.name}-click-{idx}", uid, iid, t)
        )
        timed.append((t, 0, ev))
    for ci, c in enumerate(rp.comments):
        t = rp.interaction_ts + 1.0 if rp.interaction_ts is not None else c.ts
        timed.append((t, 1, Comment(f"{ds.name}-comment-{ci}", ds.users.id(c.user), ds.items.id(c.item), t, c.text)))
    timed.sort(key=lambda x: (x[0], x[1]))
    out.extend(ev for _, _, ev in timed)
    return out


NO_RETENTION: dict[str, Any] = {"user_ttl_s": 0.0, "item_retention_s": 0.0}
"""A dataset replay evicts nothing: held-out users may be idle for months of the dataset's time, and
the figures stay comparable with those measured before retention existed."""


def bench_settings(**overrides: Any) -> Settings:
    """The environment's settings (SOCREC_*), retention off (``NO_RETENTION``), the bench's overrides
    on top (validated)."""
    from socrec_online.settings import get_settings

    return Settings(**(get_settings().model_dump() | NO_RETENTION | overrides))


def make_encoder(settings: Settings, cache_name: str | None = None) -> Any:
    """The real text tower in float32, warmed from the quality bench's persistent embedding cache."""
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    else:  # as the worker does: one thread per two cores beats oversubscribing a shared box
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    enc = TextEncoder(TextEncoderConfig.from_settings(settings))
    if cache_name is not None:
        from socrec_online.models.text_cache import text_cache_path

        enc.load_cache(text_cache_path(cache_name))
    return enc


def save_encoder_cache(encoder: Any, cache_name: str) -> None:
    from socrec_online.models.text_cache import text_cache_path

    path = text_cache_path(cache_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder.save_cache(path)


def replay(engine: Any, events: Sequence[Event], batch: int = 1024, progress: bool = True, desc: str = "replay") -> dict[str, Any]:
    """Feed events to ``engine.learn_many`` in micro-batches, as the worker would."""
    t0 = time.perf_counter()
    applied = rejected = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(events), desc=desc, unit="ev")
    for s in range(0, len(events), batch):
        chunk = events[s : s + batch]
        r = engine.learn_many(chunk)
        applied += r.applied
        rejected += len(r.rejected)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    secs = time.perf_counter() - t0
    return {"events": len(events), "applied": applied, "rejected": rejected, "seconds": round(secs, 2)}


def engine_rankings(
    engine: Any, user_ids: Sequence[str], now: float | None = None, batch: int = 256
) -> dict[str, list[str]]:
    """What each user would be published (kind "items"), best first."""
    out: dict[str, list[str]] = {}
    for s in range(0, len(user_ids), batch):
        for p in engine.recommend_many(list(user_ids[s : s + batch]), now=now, who_to_follow=False):
            if p["kind"] == "items":
                out[p["user_id"]] = [e["id"] for e in p["items"]]
    return out


def restricted_engine(settings: Settings, encoder: Any) -> Any:
    """An :class:`Engine` whose candidate pool can be narrowed to given item ids (``restrict(ids)``;
    ``restrict(None)`` = the normal pool): ranks e.g. only cold items with the very scorer,
    filters and reasons users get. For evaluation only."""
    from socrec_online.service.engine import Engine

    class _Restricted(Engine):
        def restrict(self, item_ids: Iterable[str] | None) -> None:
            if item_ids is None:
                self.scorer.allowed = None
                return
            rows = [r for r in map(self.items.get, item_ids) if r is not None]
            self.scorer.allowed = np.unique(np.asarray(rows, np.int64))

    return _Restricted(settings, encoder)


def recent_popularity(
    inter: Interactions, n_items: int, now: float, half_life_s: float, ts: float | None = None
) -> np.ndarray:
    """The engine's "popular now": sum of engagement weights (click 1, like 2) halved every
    ``half_life_s`` before ``now``; what an anonymous user is served."""
    t = np.full(len(inter), ts) if ts is not None else inter.ts
    w = np.where(inter.kind == Kind.LIKE, W_LIKE, W_CLICK) * np.exp2(-np.maximum(now - t, 0.0) / half_life_s)
    return np.bincount(inter.item, weights=w, minlength=n_items)


def popularity_rankings(
    counts: np.ndarray, item_ids: Sequence[str], users: Iterable[str], history: Mapping[str, set[str]],
    k: int, allowed: np.ndarray | None = None,
) -> dict[str, list[str]]:
    """Most-interacted items first (ties by row), the user's own history masked: the fallback."""
    score = counts.astype(np.float64).copy()
    if allowed is not None:
        score[~allowed] = -np.inf
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    out: dict[str, list[str]] = {}
    for u in users:
        seen = history.get(u, set())
        picks: list[str] = []
        for r in order.tolist():
            iid = item_ids[r]
            if iid not in seen:
                picks.append(iid)
                if len(picks) == k:
                    break
        out[u] = picks
    return out


def score_rankings(
    rankings: Mapping[str, Sequence[str]], targets: Mapping[str, set[str]], ks: tuple[int, ...] = KS
) -> dict[str, float]:
    """Mean Recall/NDCG/HR@k over users with targets (the harness's definitions); a user missing
    from ``rankings`` counts as an empty list."""
    users = [u for u, t in targets.items() if t]
    if not users:
        return {"n_users": 0.0}
    kmax = max(ks)
    hits = torch.zeros(len(users), kmax, dtype=torch.bool)
    n_pos = torch.zeros(len(users), dtype=torch.long)
    for b, u in enumerate(users):
        t = targets[u]
        n_pos[b] = len(t)
        for j, iid in enumerate(list(rankings.get(u, ()))[:kmax]):
            hits[b, j] = iid in t
    m = topk_metrics_from_hits(hits, n_pos, ks)
    out = {name: round(float(v.mean()), 6) for name, v in m.items() if not name.startswith("precision")}
    out["n_users"] = float(len(users))
    return out


def targets_of(ds: Dataset, inter: Interactions, users: set[int] | None = None) -> dict[str, set[str]]:
    """user id -> held-out item ids (deduplicated), optionally only for ``users`` (rows)."""
    out: dict[str, set[str]] = {}
    for u, i in zip(inter.user.tolist(), inter.item.tolist(), strict=True):
        if users is None or u in users:
            out.setdefault(ds.users.id(u), set()).add(ds.items.id(i))
    return out


def history_of(ds: Dataset, inter: Interactions) -> dict[str, set[str]]:
    return targets_of(ds, inter)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


__all__ = [
    "KS",
    "WIDE_TTL_S",
    "Replay",
    "bench_settings",
    "engine_rankings",
    "events_of",
    "history_of",
    "make_encoder",
    "popularity_rankings",
    "ratio",
    "recent_popularity",
    "replay",
    "restricted_engine",
    "save_encoder_cache",
    "score_rankings",
    "targets_of",
]

"""The in-memory dataset every loader returns, and its replay as a typed event stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from socrec_online.engagement import Kind
from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile
from socrec_online.idmap import IdMap


@dataclass
class Interactions:
    """Column arrays (batch-first): one row per (user, item) event."""

    user: np.ndarray  # (N,) int64 rows of Dataset.users
    item: np.ndarray  # (N,) int64 rows of Dataset.items
    ts: np.ndarray  # (N,) float64 seconds since epoch (0 where the source has no time)
    weight: np.ndarray  # (N,) float32 strength (listen count, 1.0 for a click)
    kind: np.ndarray  # (N,) int8 engagement.Kind value

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def subset(self, mask_or_index: np.ndarray) -> Interactions:
        return Interactions(
            self.user[mask_or_index],
            self.item[mask_or_index],
            self.ts[mask_or_index],
            self.weight[mask_or_index],
            self.kind[mask_or_index],
        )

    @staticmethod
    def empty() -> Interactions:
        return Interactions(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int8)
        )


@dataclass
class CommentRow:
    user: int
    item: int
    ts: float
    text: str
    sentiment_truth: float | None = None  # the generator's intent (synthetic only), for evaluation


@dataclass
class Dataset:
    """Users, items with text, interactions, a directed social graph (src follows dst)."""

    name: str
    users: IdMap
    items: IdMap
    item_text: list[str]  # (n_items,) text per item row
    interactions: Interactions  # the canonical implicit feedback (RecBole protocol uses these)
    social_src: np.ndarray  # (E,) int64 user rows
    social_dst: np.ndarray  # (E,) int64 user rows
    timed: Interactions | None = None  # timestamped stream for the temporal protocol (None = use interactions)
    item_ts: np.ndarray | None = None  # (n_items,) publish time
    item_author: list[str | None] | None = None
    item_tags: list[tuple[str, ...]] | None = None
    profiles: dict[int, str] = field(default_factory=dict)  # user row -> declared interests
    comments: list[CommentRow] = field(default_factory=list)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def stream(self) -> Interactions:
        """Interactions in time order for replay and the temporal protocol."""
        return self.timed if self.timed is not None else self.interactions

    def summary(self) -> dict[str, int]:
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self.interactions),
            "social_edges": int(self.social_src.shape[0]),
            "timed_interactions": len(self.stream),
            "profiles": len(self.profiles),
            "comments": len(self.comments),
        }

    def events(self, limit: int | None = None) -> Iterator[Event]:
        """Replay as the typed events of DESIGN.md, in a causal order.

        Items are published first (you cannot click what does not exist), then the social
        graph and profiles, then interactions and comments merged by time.
        Event ids are deterministic, so a replay of the same dataset is idempotent downstream.
        """
        n = 0

        def done() -> bool:
            return limit is not None and n >= limit

        item_ts = self.item_ts if self.item_ts is not None else np.zeros(self.n_items)
        for row in np.argsort(item_ts, kind="stable"):
            if done():
                return
            r = int(row)
            yield ItemPublished(
                event_id=f"{self.name}-item-{r}",
                item_id=self.items.id(r),
                ts=float(item_ts[r]),
                text=self.item_text[r],
                author_id=self.item_author[r] if self.item_author else None,
                tags=self.item_tags[r] if self.item_tags else (),
            )
            n += 1
        for e, (s, d) in enumerate(zip(self.social_src.tolist(), self.social_dst.tolist(), strict=True)):
            if done():
                return
            yield Follow(f"{self.name}-follow-{e}", self.users.id(s), self.users.id(d), 0.0)
            n += 1
        for u, text in sorted(self.profiles.items()):
            if done():
                return
            yield Profile(f"{self.name}-profile-{u}", self.users.id(u), 0.0, text)
            n += 1
        st = self.stream
        order = np.argsort(st.ts, kind="stable")
        comments = sorted(self.comments, key=lambda c: c.ts)
        ci = 0
        for idx in order.tolist():
            t = float(st.ts[idx])
            while ci < len(comments) and comments[ci].ts <= t:
                if done():
                    return
                c = comments[ci]
                yield Comment(f"{self.name}-comment-{ci}", self.users.id(c.user), self.items.id(c.item), c.ts, c.text)
                ci += 1
                n += 1
            if done():
                return
            uid, iid = self.users.id(int(st.user[idx])), self.items.id(int(st.item[idx]))
            if st.kind[idx] == Kind.LIKE:
                yield Like(f"{self.name}-like-{idx}", uid, iid, t)
            else:
                yield Click(f"{self.name}-click-{idx}", uid, iid, t)
            n += 1
        for c in comments[ci:]:
            if done():
                return
            yield Comment(f"{self.name}-comment-{ci}", self.users.id(c.user), self.items.id(c.item), c.ts, c.text)
            ci += 1
            n += 1

"""What the trainer learns from: a bounded window of recent interactions plus a reservoir of older ones.

Why both: fine-tuning only on the last few thousand events chases the present and forgets
what users liked last month (catastrophic forgetting, measured by ``socrec bench online``
with ``reservoir_size=0``). A uniform reservoir (Vitter's algorithm R) over everything that
fell out of the window keeps an unbiased sample of the past in constant memory.

The most recent ``holdout_fraction`` of the window is never trained on: it is the gate's
evaluation slice (candidate vs current on what happened last). Negatives are sampled per
training pair from the known catalogue, excluding the user's own positives.
Every update is idempotent on ``event_id`` (a replayed event is ignored).

What is a positive follows serving (``socrec_online/engagement.py``): each (user, item) pair's net
engagement weight is kept as the activity table keeps it, and a pair whose weight drops to <= 0
("click, then this is awful", an unliked like) leaves the buffer, as it leaves the served model's
graph. Profiles and the last comments per user are kept for the interest vector (``models/interest.py``).
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from socrec_online.engagement import MAX_COMMENTS, Engaged, PairLedger, is_positive, signed
from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile


@dataclass(frozen=True, slots=True)
class Pair:
    """One positive interaction (what a user engaged with, and when)."""

    user_id: str
    item_id: str
    ts: float
    event_id: str


@dataclass
class BufferConfig:
    recent_size: int = 20_000  # interactions in the recent window (oldest fall into the reservoir)
    reservoir_size: int = 20_000  # uniform sample of older interactions; 0 = no memory of the past
    holdout_fraction: float = 0.1  # newest share of the window held out for the gate
    max_items: int = 200_000  # item texts remembered (oldest forgotten first)
    dedup_size: int = 200_000  # event ids (and engaged pairs, users' texts) remembered
    sentiment_weighting: bool = True  # the serving rule for comments (SOCREC_SENTIMENT_WEIGHTING)
    seed: int = 0


@dataclass
class TrainingData:
    """Plain arrays over local rows (users/items listed once), what ``fine_tune`` consumes."""

    user_ids: list[str]
    item_ids: list[str]
    item_texts: list[str]
    train_u: np.ndarray  # (P,) int64 rows of user_ids
    train_i: np.ndarray  # (P,) int64 rows of item_ids
    hold_u: np.ndarray  # (H,) held-out pairs (never trained on)
    hold_i: np.ndarray  # (H,)
    follow_src: np.ndarray  # (E,) user rows
    follow_dst: np.ndarray  # (E,)
    window: dict[str, float]  # data window of what was trained on
    pairs: dict[tuple[int, int], Engaged] = field(default_factory=dict)  # training pairs' net engagement, newest last
    profiles: dict[int, str] = field(default_factory=dict)  # user row -> declared interests
    comments: list[tuple[int, str, float, float]] = field(default_factory=list)  # (user row, text, ts, signed
    # sentiment) before the held-out slice, time order

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


class ReplayBuffer:
    """Recent window + reservoir of (user, item) positives, item texts and the follow graph."""

    def __init__(self, cfg: BufferConfig | None = None, sentiment: Callable[[str], float] | None = None) -> None:
        """``sentiment`` scores comments (None: VADER, as serving)."""
        self.cfg = cfg or BufferConfig()
        self._sentiment = sentiment
        self.ledger: PairLedger[str] = PairLedger(sentiment_weighting=self.cfg.sentiment_weighting)
        self.profiles: OrderedDict[str, str] = OrderedDict()
        self.comments: OrderedDict[str, deque[tuple[str, float, float]]] = OrderedDict()
        self.recent: deque[Pair] = deque()
        self.reservoir: list[Pair] = []
        self.seen_past = 0  # pairs that ever left the window (the reservoir's stream length)
        self.items: OrderedDict[str, str] = OrderedDict()  # item id -> text
        self.follows: set[tuple[str, str]] = set()
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._rng = random.Random(self.cfg.seed)
        self.events_seen = 0

    def __len__(self) -> int:
        return len(self.recent) + len(self.reservoir)

    # --- learning -------------------------------------------------------------------------
    def _fresh(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.cfg.dedup_size:
            self._ids.popitem(last=False)
        return True

    def learn_one(self, ev: Event) -> bool:
        """Take one event; returns False for a duplicate or an event the trainer does not use."""
        if not self._fresh(ev.event_id):
            return False
        self.events_seen += 1
        if isinstance(ev, ItemPublished):
            self.items[ev.item_id] = ev.text  # the text the serving engine embeds (no tags)
            self.items.move_to_end(ev.item_id)
            if len(self.items) > self.cfg.max_items:
                self.items.popitem(last=False)
            return True
        if isinstance(ev, Follow):
            key = (ev.user_id, ev.target_id)
            if ev.undo:
                self.follows.discard(key)
            else:
                self.follows.add(key)
            return True
        if isinstance(ev, Profile):
            _put(self.profiles, ev.user_id, ev.text, self.cfg.dedup_size)
            return True
        if not isinstance(ev, Click | Like | Comment):
            return False
        e = self._engage(ev)
        if e is None or not is_positive(e[0]):
            self._forget(ev.user_id, ev.item_id)  # no longer a positive (wherever it is kept)
        elif not (isinstance(ev, Like) and ev.undo):
            self._push(Pair(ev.user_id, ev.item_id, float(ev.ts), ev.event_id))
        return True

    def _engage(self, ev: Click | Like | Comment) -> Engaged | None:
        """The pair's net engagement after ``ev``, by the serving rules."""
        u, i, ts = ev.user_id, ev.item_id, float(ev.ts)
        if isinstance(ev, Click):
            e: Engaged | None = self.ledger.click(u, i, ts, ev.dwell_ms)
        elif isinstance(ev, Like):
            e = self.ledger.like(u, i, ts, ev.undo)
        else:
            if self._sentiment is None:
                from socrec_online.service.sentiment import vader_sentiment

                self._sentiment = vader_sentiment()
            score = self._sentiment(ev.text)
            e = self.ledger.comment(u, i, ts, score)
            kept = self.comments.pop(u, None) or deque(maxlen=MAX_COMMENTS)
            kept.append((ev.text, ts, signed(score, self.cfg.sentiment_weighting)))
            _put(self.comments, u, kept, self.cfg.dedup_size)
        while len(self.ledger.pairs) > self.cfg.dedup_size:
            del self.ledger.pairs[next(iter(self.ledger.pairs))]
        return e

    def learn_many(self, events: Iterable[Event]) -> int:
        """Take a batch in order; returns how many were new."""
        return sum(1 for ev in events if self.learn_one(ev))

    def _push(self, p: Pair) -> None:
        self.recent.append(p)
        while len(self.recent) > self.cfg.recent_size:
            self._to_reservoir(self.recent.popleft())

    def _to_reservoir(self, p: Pair) -> None:
        k = self.cfg.reservoir_size
        self.seen_past += 1
        if k <= 0:
            return
        if len(self.reservoir) < k:
            self.reservoir.append(p)
            return
        j = self._rng.randrange(self.seen_past)  # algorithm R: every past pair kept with prob. k / n
        if j < k:
            self.reservoir[j] = p

    def _forget(self, user_id: str, item_id: str) -> None:
        """A pair that is no longer a positive leaves the window and the reservoir."""
        self.recent = deque(p for p in self.recent if not (p.user_id == user_id and p.item_id == item_id))
        self.reservoir = [p for p in self.reservoir if not (p.user_id == user_id and p.item_id == item_id)]

    # --- reading --------------------------------------------------------------------------
    def split(self) -> tuple[list[Pair], list[Pair]]:
        """(training pairs: reservoir + older window, held-out pairs: newest window share)."""
        n_hold = int(len(self.recent) * self.cfg.holdout_fraction)
        recent = list(self.recent)
        cut = len(recent) - n_hold
        return self.reservoir + recent[:cut], recent[cut:]

    def training_data(self, known_users: Sequence[str] = (), known_items: Sequence[str] = ()) -> TrainingData:
        """Local rows: ``known_*`` first (a warm start keeps their rows), then new ids in order of appearance.

        Pairs on items whose text the buffer never saw are dropped (nothing to score them by).
        """
        train, hold = self.split()
        users: dict[str, int] = {}
        items: dict[str, int] = {}
        for u in known_users:
            users.setdefault(u, len(users))
        for i in known_items:
            items.setdefault(i, len(items))
        for i in self.items:
            items.setdefault(i, len(items))

        def rows(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
            uu, ii = [], []
            for p in pairs:
                if p.item_id not in self.items and p.item_id not in items:
                    continue
                uu.append(users.setdefault(p.user_id, len(users)))
                ii.append(items.setdefault(p.item_id, len(items)))
            return np.asarray(uu, np.int64), np.asarray(ii, np.int64)

        tu, ti = rows(train)
        hu, hi = rows(hold)
        cut = min((p.ts for p in hold), default=float("inf"))
        pairs: dict[tuple[int, int], Engaged] = {}
        for (u, i), e in self.ledger.pairs.items():  # newest last, as serving keeps them
            if u in users and i in items and e[1] < cut:
                pairs[(users[u], items[i])] = e
        comments = sorted(
            ((users[u], text, t, s) for u, cs in self.comments.items() if u in users for text, t, s in cs if t < cut),
            key=lambda c: c[2],
        )
        src, dst = [], []
        for a, b in sorted(self.follows):
            src.append(users.setdefault(a, len(users)))
            dst.append(users.setdefault(b, len(users)))
        item_ids = list(items)
        texts = [self.items.get(i, "") for i in item_ids]
        ts = [p.ts for p in train]
        window = {
            "from_ts": float(min(ts)) if ts else 0.0,
            "to_ts": float(max(ts)) if ts else 0.0,
            "train_pairs": float(len(tu)),
            "holdout_pairs": float(len(hu)),
            "reservoir_pairs": float(len(self.reservoir)),
            "events_seen": float(self.events_seen),
        }
        return TrainingData(
            user_ids=list(users),
            item_ids=item_ids,
            item_texts=texts,
            train_u=tu,
            train_i=ti,
            hold_u=hu,
            hold_i=hi,
            follow_src=np.asarray(src, np.int64),
            follow_dst=np.asarray(dst, np.int64),
            window=window,
            pairs=pairs,
            profiles={users[u]: text for u, text in self.profiles.items() if u in users},
            comments=comments,
        )


def _put(d: OrderedDict[str, Any], key: str, value: Any, cap: int) -> None:
    """``d[key] = value`` as the newest entry; the oldest go beyond ``cap``."""
    d.pop(key, None)
    d[key] = value
    while len(d) > cap:
        d.popitem(last=False)


def sample_negatives(
    users: np.ndarray, n_items: int, k: int, positives: dict[int, set[int]], rng: np.random.Generator
) -> np.ndarray:
    """(P, k) item rows, uniform over the catalogue, resampled where they hit the user's positives."""
    neg = rng.integers(0, n_items, size=(users.shape[0], k))
    rest: dict[int, np.ndarray] = {}
    for r, u in enumerate(users.tolist()):
        pos = positives.get(u)
        if not pos or len(pos) >= n_items:
            continue
        for c in range(k):
            tries = 0
            while int(neg[r, c]) in pos:
                if tries >= 4:  # a heavy user: draw from the complement directly
                    if u not in rest:
                        rest[u] = np.setdiff1d(np.arange(n_items), np.fromiter(pos, np.int64))
                    neg[r, c] = rng.choice(rest[u])
                    break
                neg[r, c] = rng.integers(0, n_items)
                tries += 1
    return neg

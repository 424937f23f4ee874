"""The generated event streams of the reliability scenarios: a causal stream whose every effect is
checkable against the replay oracle, and an endless stream over a bounded key space (load, soak)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile
from socrec_online.partitioning import owner_partition

# Per key, the engine remembers the last ``dedup_ids_per_key`` (64) event ids and the last
# ``recent_per_user`` (50) engaged items: generated streams stay below both, so "every effect
# exactly once" is checkable key by key (beyond them, dedup is bounded by design).
MAX_ACTIVITY_PER_USER = 55
MAX_ITEMS_PER_USER = 45
MAX_FOLLOWS_PER_USER = 40
MAX_COMMENTS_PER_USER = 5
_WORDS = ["cycling", "jazz", "baking", "astronomy", "gardening", "chess", "football", "poetry", "sushi", "hiking", "opera", "robotics", "painting", "surfing", "coffee", "history", "vinyl", "climbing", "knitting", "photography"]


def _text(rng: random.Random, n: int = 4) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def make_stream(n_events: int, *, partitions: int, seed: int = 0, tag: str = "s") -> list[Event]:
    """A causal social stream (items first) whose event ids are ``{tag}.{topic}.p{partition}.{seq}``.

    Per key the stream stays inside the engine's recency windows (module constants), so the oracle
    comparison can demand every effect exactly once. ``ts`` is re-stamped when sent.
    """
    rng = random.Random(seed)
    n_items = max(20, n_events // 10)
    n_users = max(20, n_events // 15)
    users = [f"{tag}u{i}" for i in range(n_users)]
    items = [f"{tag}i{j}" for j in range(n_items)]
    seq: dict[tuple[str, int], int] = {}

    def eid(topic: str, key: str) -> str:
        p = owner_partition(key, partitions)
        n = seq.get((topic, p), 0)
        seq[(topic, p)] = n + 1
        return f"{tag}.{topic}.p{p}.{n:07d}"

    t = time.time()
    out: list[Event] = [
        ItemPublished(eid("items", i), i, t, _text(rng, 6), author_id=rng.choice(users)) for i in items
    ]
    act = dict.fromkeys(users, 0)
    soc = dict.fromkeys(users, 0)
    comments = dict.fromkeys(users, 0)
    profiled: set[str] = set()
    engaged: dict[tuple[str, str], set[str]] = {}
    touched_items: dict[str, set[str]] = {u: set() for u in users}
    following: dict[str, set[str]] = {u: set() for u in users}
    guard = 0
    while len(out) < n_events and guard < n_events * 20:
        guard += 1
        u = rng.choice(users)
        r = rng.random()
        if r < 0.18:
            if soc[u] >= MAX_FOLLOWS_PER_USER:
                continue
            if following[u] and rng.random() < 0.15:
                v = rng.choice(sorted(following[u]))
                out.append(Follow(eid("follows", u), u, v, t, undo=True))
                following[u].discard(v)
            else:
                v = rng.choice(users)
                if v == u:
                    continue
                out.append(Follow(eid("follows", u), u, v, t))
                following[u].add(v)
            soc[u] += 1
            continue
        if act[u] >= MAX_ACTIVITY_PER_USER:
            continue
        if r < 0.22:
            if u in profiled and rng.random() < 0.7:
                continue
            out.append(Profile(eid("profiles", u), u, t, f"I like {_text(rng, 3)}"))
            profiled.add(u)
            act[u] += 1
            continue
        kind = "clicks" if r < 0.70 else "likes" if r < 0.93 else "comments"
        if kind == "comments" and comments[u] >= MAX_COMMENTS_PER_USER:
            continue
        done = engaged.setdefault((u, kind), set())
        said = engaged.setdefault((u, "comments"), set())
        # A negative comment overrides an earlier click on the same item, so that item's weight
        # depends on the order of two topics, which Kafka does not define: comments get items of
        # their own (the oracle then needs no cross-topic order).
        pool = [i for i in touched_items[u] if i not in done and i not in said] if kind != "comments" else []
        if pool and rng.random() < 0.4:
            item = rng.choice(sorted(pool))
        else:
            if len(touched_items[u]) >= MAX_ITEMS_PER_USER:
                continue
            item = rng.choice(items)
            if item in done or (kind == "comments" and item in touched_items[u]) or item in said:
                continue
        done.add(item)
        touched_items[u].add(item)
        act[u] += 1
        if kind == "clicks":
            out.append(Click(eid(kind, u), u, item, t, dwell_ms=rng.choice([None, 400, 5000])))
        elif kind == "likes":
            out.append(Like(eid(kind, u), u, item, t))
        else:
            comments[u] += 1
            text = rng.choice(["this is wonderful, I love it", "awful and boring", f"about {_text(rng, 2)}"])
            out.append(Comment(eid(kind, u), u, item, t, text))
    return out




def load_stream(
    n_users: int, n_items: int, *, seed: int = 0, tag: str = "ld"
) -> tuple[list[Event], Iterator[Event]]:
    """(catalogue + graph bootstrap, an endless stream of interactions over the same bounded keys)."""
    rng = random.Random(seed)
    users = [f"{tag}u{i}" for i in range(n_users)]
    items = [f"{tag}i{j}" for j in range(n_items)]
    t = time.time()
    head: list[Event] = [ItemPublished(f"{tag}-item-{i}", i, t, _text(rng, 6)) for i in items]
    head += [
        Follow(f"{tag}-f-{k}", u, v, t)
        for k, (u, v) in enumerate((u, rng.choice(users)) for u in users for _ in range(3))
        if u != v
    ]

    def gen() -> Iterator[Event]:
        n = 0
        while True:
            n += 1
            u, i = rng.choice(users), rng.choice(items)
            r = rng.random()
            if r < 0.75:
                yield Click(f"{tag}-c-{n}", u, i, t, dwell_ms=rng.choice([None, 3000]))
            elif r < 0.95:
                yield Like(f"{tag}-l-{n}", u, i, t, undo=rng.random() < 0.2)
            else:
                yield Comment(f"{tag}-m-{n}", u, i, t, rng.choice(["love it", "meh", "terrible"]))

    return head, gen()


__all__ = [
    "MAX_ACTIVITY_PER_USER",
    "MAX_COMMENTS_PER_USER",
    "MAX_FOLLOWS_PER_USER",
    "MAX_ITEMS_PER_USER",
    "load_stream",
    "make_stream",
]

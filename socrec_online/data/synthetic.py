"""A seeded social network with text items, needing nothing outside the repo.

Users have latent topic mixtures; they follow people with similar tastes (homophily) plus
some random accounts; items are written in their topic's words; clicks and likes follow
taste plus what followed users engaged with; comments carry sentiment consistent with
whether the item matched the commenter's taste, so sentiment-aware learning is testable, and a
follower does not copy an item its followee panned in a (visible) comment (``skip_panned``).

``aversions`` (off by default, so every other bench's figures stand) adds dislikes INSIDE a
user's favourite topic: words the user turns out not to stand, learned from experience. Without
it every disliked item is off the user's taste, far from what a recommender puts in their list,
so "this is awful lowers the item and its neighbours" has little to act on (docs/quality.md, "Sentiment").
``meta["enjoys"]`` (U, I) is the ground truth a comment's sign follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from socrec_online.data.base import CommentRow, Dataset, Interactions
from socrec_online.engagement import Kind
from socrec_online.idmap import IdMap

TOPICS: dict[str, list[str]] = {
    "indie folk": ["acoustic", "folk", "banjo", "songwriter", "indie", "ballad", "harmonies", "fingerpicking"],
    "cycling": ["cycling", "bike", "peloton", "tour", "climb", "gravel", "sprint", "saddle"],
    "cooking": ["recipe", "kitchen", "pasta", "baking", "spices", "chef", "bread", "sauce"],
    "machine learning": ["neural", "model", "training", "dataset", "transformer", "gradient", "inference", "gpu"],
    "astronomy": ["telescope", "galaxy", "nebula", "planet", "orbit", "stars", "comet", "eclipse"],
    "football": ["football", "goal", "striker", "league", "match", "penalty", "keeper", "derby"],
    "gardening": ["garden", "seeds", "compost", "roses", "soil", "tomatoes", "pruning", "greenhouse"],
    "jazz": ["jazz", "saxophone", "bebop", "trumpet", "improvisation", "swing", "quartet", "blues"],
    "photography": ["camera", "lens", "portrait", "exposure", "landscape", "film", "aperture", "photo"],
    "climate": ["climate", "carbon", "emissions", "renewable", "solar", "warming", "policy", "wind"],
    "gaming": ["game", "console", "multiplayer", "quest", "speedrun", "boss", "controller", "arcade"],
    "hiking": ["trail", "mountain", "summit", "backpack", "hiking", "forest", "camping", "ridge"],
}
TEMPLATES = [
    "{a} and {b}: notes on {c}",
    "why {a} beats {b} every time",
    "a beginner's guide to {a} and {c}",
    "{a} {b} {c} weekly roundup",
    "the best {a} of the year, plus {b}",
    "live: {a}, {b} and {c}",
]
POSITIVE = ["love it", "this is great", "amazing, thanks for sharing", "really enjoyed this", "brilliant {a}"]
NEGATIVE = ["this is awful", "boring and pointless", "terrible, not for me", "hate this {a}", "what a waste of time"]
LIKE_THRESHOLD = 0.15
"""A user enjoys a topic whose share of their taste exceeds this (and always their top topic)."""


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 600
    n_items: int = 1500
    n_topics: int = len(TOPICS)
    interactions_per_user: int = 30
    follows_per_user: int = 8
    homophily: float = 0.8  # share of follows chosen among similar users
    social_influence: float = 0.3  # share of engagements copied from followed users
    like_share: float = 0.3
    comment_share: float = 0.1
    profile_share: float = 0.5  # users who wrote a declared-interest profile
    skip_panned: bool = True  # a followee's visible negative comment keeps followers from copying the item
    aversions: int = 0  # words of their top topic a user turns out to dislike ("a jazz fan who hates bebop")
    aversion_learning: float = 0.8  # after a bad experience, the drop in the chance of picking that word again
    time_span_s: float = 30 * 86400.0
    start_ts: float = 1_700_000_000.0
    seed: int = 0


def generate(cfg: SyntheticConfig = SyntheticConfig()) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    names = list(TOPICS)[: cfg.n_topics]
    k = len(names)
    # Users: sparse topic mixtures (each user cares about 1-3 topics).
    theta = rng.dirichlet(np.full(k, 0.15), size=cfg.n_users)  # (U, K)
    item_topic = rng.integers(0, k, size=cfg.n_items)  # (I,)
    item_ts = cfg.start_ts + np.sort(rng.uniform(0, cfg.time_span_s * 0.9, size=cfg.n_items))
    rng.shuffle(item_ts)
    users = IdMap(f"u{u}" for u in range(cfg.n_users))
    items = IdMap(f"i{i}" for i in range(cfg.n_items))
    texts: list[str] = []
    item_words: list[frozenset[str]] = []
    tags: list[tuple[str, ...]] = []
    for i in range(cfg.n_items):
        words = TOPICS[names[item_topic[i]]]
        a, b, c = rng.choice(words, size=3, replace=False)
        tpl = str(rng.choice(TEMPLATES))
        texts.append(tpl.format(a=a, b=b, c=c))
        item_words.append(frozenset(str(w) for k, w in zip("abc", (a, b, c), strict=True) if "{" + k + "}" in tpl))
        tags.append((names[item_topic[i]].replace(" ", "-"),))
    authors: list[str | None] = [f"u{int(rng.integers(cfg.n_users))}" for _ in range(cfg.n_items)]

    # Homophilous follow graph.
    sim = theta @ theta.T
    np.fill_diagonal(sim, -1)
    src, dst = [], []
    for u in range(cfg.n_users):
        n_h = round(cfg.follows_per_user * cfg.homophily)
        top = np.argpartition(-sim[u], n_h * 3)[: n_h * 3]
        chosen = set(rng.choice(top, size=n_h, replace=False).tolist())
        while len(chosen) < cfg.follows_per_user:
            v = int(rng.integers(cfg.n_users))
            if v != u:
                chosen.add(v)
        for v in sorted(chosen):
            src.append(u)
            dst.append(v)
    following: list[list[int]] = [[] for _ in range(cfg.n_users)]
    for s, d in zip(src, dst, strict=True):
        following[s].append(d)

    # Interactions in global time order; social influence copies a followee's past item.
    n_total = cfg.n_users * cfg.interactions_per_user
    ts_all = np.sort(cfg.start_ts + rng.uniform(cfg.time_span_s * 0.05, cfg.time_span_s, size=n_total))
    who = rng.integers(0, cfg.n_users, size=n_total)
    enjoys = theta > LIKE_THRESHOLD  # (U, K) the topics a user's comments are positive about
    enjoys[np.arange(cfg.n_users), theta.argmax(1)] = True
    pref = theta[:, item_topic] + 1e-3  # (U, I)
    # Aspect aversions (off by default): disliked words inside the user's favourite topic, unknown to
    # the user until a bad experience. Drawn from their own rng stream: the default output is unchanged.
    arng = np.random.default_rng([cfg.seed, 1])
    averse: list[frozenset[str]] = [
        frozenset(str(w) for w in arng.choice(TOPICS[names[int(theta[u].argmax())]], size=cfg.aversions, replace=False))
        if cfg.aversions else frozenset()
        for u in range(cfg.n_users)
    ]
    with_word: dict[str, np.ndarray] = {}
    if cfg.aversions:
        for w in {w for a in averse for w in a}:
            with_word[w] = np.fromiter((w in iw for iw in item_words), bool, cfg.n_items)
    history: list[list[int]] = [[] for _ in range(cfg.n_users)]
    seen: list[set[int]] = [set() for _ in range(cfg.n_users)]
    us, its, tss, ks = [], [], [], []
    comments: list[CommentRow] = []
    panned: list[set[int]] = [set() for _ in range(cfg.n_users)]  # items u said they disliked
    for t, u in zip(ts_all.tolist(), who.tolist(), strict=True):
        avail = item_ts <= t
        item = -1
        if rng.random() < cfg.social_influence and following[u]:
            f = int(rng.choice(following[u]))
            cand = [i for i in history[f][-20:] if i not in seen[u] and i not in panned[f]]
            if cand:
                item = int(rng.choice(cand))
        if item < 0:
            p = pref[u] * avail
            for i in seen[u]:
                p[i] = 0.0
            s = p.sum()
            if s <= 0:
                continue
            item = int(rng.choice(cfg.n_items, p=p / s))
        seen[u].add(item)
        bad = averse[u] & item_words[item]
        for w in bad:  # once bitten: the user picks items with that word less from now on
            pref[u, with_word[w]] *= 1.0 - cfg.aversion_learning
        history[u].append(item)
        r = rng.random()
        kind = Kind.LIKE if r < cfg.like_share else Kind.CLICK
        us.append(u)
        its.append(item)
        tss.append(t)
        ks.append(kind)
        if rng.random() < cfg.comment_share:
            liked = bool(enjoys[u, item_topic[item]]) and not bad
            pool = POSITIVE if liked else NEGATIVE
            word = str(rng.choice(TOPICS[names[item_topic[item]]]))
            comments.append(CommentRow(u, item, t + 1.0, str(rng.choice(pool)).format(a=word), 1.0 if liked else -1.0))
            if not liked and cfg.skip_panned:
                panned[u].add(item)
    enjoys_item = enjoys[:, item_topic]  # (U, I) what a comment of u on i would praise
    for u, a in enumerate(averse):
        for w in a:
            enjoys_item[u, with_word[w]] = False
    # Negative comments are on items the user clicked but did not enjoy: interactions stay (a click
    # happened), sentiment tells the model which way to weigh them.
    profiles = {}
    for u in range(cfg.n_users):
        if rng.random() < cfg.profile_share:
            top = np.argsort(-theta[u])[:2]
            words = [str(w) for t_ in top for w in rng.choice(TOPICS[names[t_]], size=2, replace=False)]
            profiles[u] = f"I like {names[top[0]]} and {names[top[1]]}: " + ", ".join(words)
    inter = Interactions(
        np.asarray(us, np.int64),
        np.asarray(its, np.int64),
        np.asarray(tss, np.float64),
        np.ones(len(us), np.float32),
        np.asarray(ks, np.int8),
    )
    return Dataset(
        name="synthetic",
        users=users,
        items=items,
        item_text=texts,
        interactions=inter,
        social_src=np.asarray(src, np.int64),
        social_dst=np.asarray(dst, np.int64),
        item_ts=item_ts,
        item_author=authors,
        item_tags=tags,
        profiles=profiles,
        comments=comments,
        meta={"config": cfg.__dict__, "topics": names, "theta": theta, "item_topic": item_topic,
              "enjoys": enjoys_item, "aversions": [sorted(a) for a in averse]},
    )


__all__ = ["TOPICS", "SyntheticConfig", "generate"]

"""Item texts, a clock and a random event stream shared by the engine tests: eight topics a tiny
model can tell apart."""

from __future__ import annotations

import random

from socrec_online.events import Click, Comment, Event, Follow, ItemPublished, Like, Profile, Query

T0 = 1_700_000_000.0
TEXTS = [
    "acoustic folk ballad with banjo",
    "gravel cycling climb of the tour",
    "pasta sauce recipe from a chef",
    "neural network training on a gpu",
    "telescope view of a distant galaxy",
    "football derby penalty drama",
    "compost and tomatoes in the garden",
    "bebop saxophone jazz quartet",
]

COMMENTS = ["love it", "this is awful", "ok I guess", "brilliant, more please"]


def random_batches(
    seed: int,
    users: list[str],
    items: list[str],
    *,
    batches: int,
    size: int,
    publish: float,
    undo: float,
    queries: bool,
    self_follows: bool,
) -> list[list[Event]]:
    """Random mixes of every event kind for property tests: clicks, likes and follows with undos,
    comments of both signs, profiles, item (re)publications (``publish`` of the events), queries."""
    rng = random.Random(seed)
    out: list[list[Event]] = []
    n = 0
    for _ in range(batches):
        batch: list[Event] = []
        for _ in range(size):
            n += 1
            u, it, t, eid = rng.choice(users), rng.choice(items), T0 + 100 + n, f"e{n}"
            k = rng.random()
            if k < publish:
                batch.append(ItemPublished(eid, it, t, f"{rng.choice(TEXTS)} v{n}", author_id=rng.choice(users)))
            elif k < publish + 0.25:
                batch.append(Click(eid, u, it, t, rng.choice([None, 50, 5000])))
            elif k < publish + 0.4:
                batch.append(Like(eid, u, it, t, undo=rng.random() < undo))
            elif k < publish + 0.52:
                batch.append(Comment(eid, u, it, t, rng.choice(COMMENTS)))
            elif k < publish + 0.75:
                v = rng.choice(users if self_follows else [x for x in users if x != u])
                batch.append(Follow(eid, u, v, t, undo=rng.random() < undo))
            elif k < publish + 0.87 or not queries:
                batch.append(Profile(eid, u, t, rng.choice(TEXTS)))
            else:
                batch.append(Query(eid, u, t, rng.choice(TEXTS)))
        out.append(batch)
    return out

"""Two engines that each apply half the partitions and take the other half's table values through
``Engine.upsert`` recommend what one engine that applied everything recommends (scale-out)."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from _engine_texts import T0, TEXTS, random_batches

from socrec_online.events import Event, ItemPublished, key_of
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

USERS = [f"u{i}" for i in range(14)]
ITEMS = [f"x{i}" for i in range(24)]


def make(encoder: Any) -> Engine:
    return Engine(Settings(device="cpu", top_k=6, who_to_follow_k=4, recent_per_user=5, seen_per_user=8), encoder)


def owner(ev: Event) -> int:
    return zlib.crc32(key_of(ev).encode()) % 2


def stream(seed: int) -> list[list[Event]]:
    first = [
        ItemPublished(f"i-{i}", it, T0 + i, TEXTS[i % len(TEXTS)] + f" {i}", author_id=USERS[(i * 5) % len(USERS)])
        for i, it in enumerate(ITEMS)
    ]
    rest = random_batches(
        seed, USERS, ITEMS, batches=8, size=20, publish=0.05, undo=0.2, queries=False, self_follows=False
    )
    return [first, *rest]


def top(payloads: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    return {(p["user_id"], p["kind"]): {e["id"]: e["score"] for e in p["items"]} for p in payloads}


def same_top_k(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal sets, or a swap at the k-th place between two scores equal up to float summation order."""
    if a.keys() == b.keys():
        return all(a[i] == pytest.approx(b[i], abs=1e-4) for i in a)
    kth = min(a.values())
    return all(abs(s - kth) < 1e-4 for i, s in {**a, **b}.items() if i not in a.keys() & b.keys())


@pytest.mark.parametrize("seed", [1, 2])
def test_two_shards_sharing_state_recommend_like_one_engine(encoder: Any, seed: int) -> None:
    one, shards = make(encoder), [make(encoder), make(encoder)]
    for batch in stream(seed):
        one.learn_many(batch)
        updates = []
        for w, eng in enumerate(shards):
            r = eng.learn_many([ev for ev in batch if owner(ev) == w])
            assert not r.rejected  # every item was published in an earlier batch, or in this one here
            updates.append(r.table_updates)
        for w, eng in enumerate(shards):
            eng.upsert(updates[1 - w])  # what the other worker wrote to its changelogs
    assert one.stats() == shards[0].stats() == shards[1].stats()
    want = top(one.recommend_many(USERS))
    for eng in shards:
        got = top(eng.recommend_many(USERS))
        assert want.keys() == got.keys()
        bad = [k for k in want if not same_top_k(want[k], got[k])]
        assert not bad, [(k, want[k], got[k]) for k in bad]


def test_upsert_is_idempotent_and_agrees_with_restore(encoder: Any) -> None:
    batches = stream(3)
    live = make(encoder)
    tables: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}
    for b in batches:
        for name, kv in live.learn_many(b).table_updates.items():
            tables[name].update(kv)
    follower = make(encoder)
    assert follower.upsert(tables) == {name: len(kv) for name, kv in tables.items()}
    before = top(follower.recommend_many(USERS))
    follower.upsert(tables)  # the same values again: a replayed changelog
    assert top(follower.recommend_many(USERS)) == before
    restored = make(encoder)
    restored.restore(tables)
    assert restored.stats() == follower.stats() == live.stats()
    for key, items in top(restored.recommend_many(USERS)).items():
        assert same_top_k(items, before[key]), key
    # it keeps learning on top of what it took over, and dedups what it took over
    r = follower.learn_many(batches[-1])
    assert r.applied == 0 and r.duplicates == len(batches[-1])

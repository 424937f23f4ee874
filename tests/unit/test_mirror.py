"""streams.mirror without a broker: which changelog values a worker takes over, and which it leaves
to its own recovered tables."""

from __future__ import annotations

import orjson

from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.mirror import StateMirror
from streams.tables import FENCE_KEY


def make(owned: set[int]) -> StateMirror:
    async def apply(take: object) -> int:
        return 0

    return StateMirror(Settings(), {"social": "app-social-changelog"}, lambda: owned, apply)


def put(m: StateMirror, p: int, key: str, value: object) -> None:
    m.add("social", p, key.encode(), None if value is None else orjson.dumps(value))


def test_take_returns_only_other_workers_partitions_once() -> None:
    owned = {0}
    m = make(owned)
    put(m, 0, "mine", {"v": 1})
    put(m, 1, "theirs", {"v": 1})
    put(m, 1, "theirs", {"v": 2})  # the latest value wins
    m.add("social", 1, FENCE_KEY.encode(), b'{"fence": 3}')  # never state
    assert m.take() == {"social": {"theirs": {"v": 2}}}
    assert m.take() == {"social": {}}  # taken once
    owned.add(1)  # a rebalance gave us partition 1: its values now come from our recovered table
    put(m, 1, "theirs", {"v": 3})
    assert m.take() == {"social": {}}


def test_merge_prefers_the_changelog_for_partitions_owned_elsewhere() -> None:
    mine, theirs, deleted = "u1", "u2", "u3"  # partitions 0, 2, 2 of 4 (co-partitioned like the inputs)
    m = make({owner_partition(mine, 4)})
    put(m, 2, theirs, {"v": "changelog"})
    put(m, 2, deleted, {"v": 1})
    put(m, 2, deleted, None)  # a tombstone: its owner deleted it
    put(m, 0, mine, {"v": "changelog, maybe behind"})
    own = {"social": {
        mine: {"v": "table"},
        theirs: {"v": "left over from a revoked partition"},
        deleted: {"v": "left over too"},
    }}  # fmt: skip
    merged = m.merge(own)
    assert merged == {"social": {mine: {"v": "table"}, theirs: {"v": "changelog"}}}  # the deleted key stays deleted
    assert m.take() == {"social": {}}  # everything read so far is in the rebuild


def test_a_tombstone_drops_the_key_and_is_handed_to_the_engine_as_a_deletion() -> None:
    m = make({0})
    for i in range(100):
        put(m, 1, f"gone{i}", {"v": i})
    assert m.take() == {"social": {f"gone{i}": {"v": i} for i in range(100)}}
    for i in range(100):
        put(m, 1, f"gone{i}", None)  # the owner's retention sweep evicted them
    assert m.values["social"] == {}  # the mirror is bounded by the live keys
    assert m.take() == {"social": {f"gone{i}": None for i in range(100)}}  # Engine.upsert removes them
    put(m, 1, "gone1", {"v": "back"})  # a user who acts again after the eviction
    assert m.take() == {"social": {"gone1": {"v": "back"}}}


def test_nothing_is_taken_while_a_rebalance_is_under_way() -> None:
    now: dict[str, set[int] | None] = {"owned": None}  # revoked, not yet assigned

    async def apply(take: object) -> int:
        return 0

    m = StateMirror(Settings(), {"social": "c"}, lambda: now["owned"], apply)
    put(m, 0, "mine", {"v": 1})
    put(m, 1, "theirs", {"v": 1})
    assert m.take() == {"social": {}}  # not even "theirs": this worker may own it in a moment
    now["owned"] = {0}
    assert m.take() == {"social": {"theirs": {"v": 1}}}

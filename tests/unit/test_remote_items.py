"""streams.remote_items without a broker: the verdict for a click held on an item of another
worker's items partition, from rounds of offsets (the integration test drives the real thing:
tests/integration/test_remote_item_wait.py)."""

from __future__ import annotations

from socrec_online.settings import Settings
from streams.remote_items import RemoteItems, Round

P = 1  # the items partition another worker owns


class Mirror:
    def __init__(self) -> None:
        self.at: int | None = 0
        self.pending: set[str] = set()


def make(mirror: Mirror) -> RemoteItems:
    s = Settings(partitions=2, unknown_item_max_wait_s=60.0)
    return RemoteItems(s, "g", "items", "items-changelog", lambda _p: mirror.at, lambda i: i in mirror.pending)


def rnd(at: float, end: int, committed: int, changelog_end: int) -> Round:
    return Round(at, {0: 0, P: end}, {0: -1, P: committed}, {0: 0, P: changelog_end})


def test_waits_until_the_owner_committed_past_the_end_as_of_the_hold_and_the_mirror_read_it() -> None:
    m = Mirror()
    r = make(m)
    r.keep(rnd(9.0, end=5, committed=5, changelog_end=7))  # before the hold: not the hold's end
    assert r.on_way(P, "i1", since=10.0)  # no round after the hold yet
    r.keep(rnd(10.1, end=8, committed=5, changelog_end=7))
    assert r.on_way(P, "i1", since=10.0)  # (a): the owner is at 5 of 8
    r.keep(rnd(10.3, end=9, committed=8, changelog_end=12))  # caught up with 8; new items keep coming
    m.at = 11
    assert r.on_way(P, "i1", since=10.0)  # (b): the mirror has not read to 12
    m.at, m.pending = 12, {"i1"}
    assert r.on_way(P, "i1", since=10.0)  # (b): read, not applied
    m.pending = set()
    assert not r.on_way(P, "i1", since=10.0)  # never published: the grace decides
    r.keep(rnd(10.5, end=20, committed=9, changelog_end=30))  # steady load: the ends move on
    assert not r.on_way(P, "i1", since=10.0)  # the hold's own end counts, not the moving one
    m.at = None  # the mirror restarts its reading
    assert r.on_way(P, "i1", since=10.0)


def test_an_empty_partition_and_a_group_without_commits() -> None:
    m = Mirror()
    r = make(m)
    r.keep(rnd(1.0, end=0, committed=-1, changelog_end=0))
    assert not r.on_way(P, "i1", since=0.5)  # nothing was ever published there
    r.keep(rnd(2.0, end=3, committed=-1, changelog_end=0))
    assert r.on_way(P, "i2", since=1.5)  # published, and the owner committed nothing yet


def test_rounds_older_than_the_longest_wait_are_forgotten() -> None:
    r = make(Mirror())
    for t in range(100):
        r.keep(rnd(float(t), end=1, committed=1, changelog_end=0))
    assert len(r.rounds) == 62 and r.rounds[0].at == 38.0  # from 99 - 60 s - 1 s of slack on

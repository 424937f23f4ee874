"""Scale-out: a click on an item published on another worker's items partition waits for it past
its grace while the owner has not applied it (streams.remote_items), and a click on an item never
published is still dead-lettered long before ``unknown_item_max_wait_s``. Two real workers; the
owner is made slow with SIGSTOP (shorter than the session timeout: it keeps its partitions)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _rigs import send, wait_until

from benchmarks.crashes import dead_lettered_reasons
from benchmarks.harness.rig import Rig
from socrec_online.brokers import ManagedBroker
from socrec_online.events import Click, ItemPublished
from socrec_online.partitioning import owner_partition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
GRACE_S = 0.2
ENV = {
    "SOCREC_BATCH_MAX_SECONDS": "0.05",
    "SOCREC_BATCH_CATCHUP_BACKLOG": "0",
    "SOCREC_UNKNOWN_ITEM_GRACE_S": str(GRACE_S),
    "SOCREC_UNKNOWN_ITEM_MAX_WAIT_S": "60",
}


@pytest.fixture(scope="module")
def pair(broker: ManagedBroker, broker_kind: str, tiny_text_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Rig]]:
    """Two workers of one app, each owning some of the partitions."""
    tmp = tmp_path_factory.mktemp("remote-items")
    a, b = (
        Rig(broker.bootstrap, tmp / n, "ri.", text_model=tiny_text_model_path, partitions=PARTITIONS, env=ENV,
            broker_kind=broker_kind)
        for n in ("a", "b")
    )  # fmt: skip
    asyncio.run(a.ensure_topics())
    a.start()
    b.start()
    try:

        def split() -> bool:
            owned = [set((r.state() or {}).get("owned") or ()) for r in (a, b)]
            return all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == set(range(PARTITIONS))

        wait_until("the two workers to share the partitions", split, [a, b])
        yield a, b
    finally:
        a.stop()
        b.stop()


def owned(r: Rig) -> set[int]:
    return set((r.state() or {})["owned"])


def key_on(partitions: set[int], prefix: str) -> str:
    """The first ``prefix<n>`` id the producers put on one of ``partitions``."""
    return next(f"{prefix}{n}" for n in range(10_000) if owner_partition(f"{prefix}{n}", PARTITIONS) in partitions)


def clicks(r: Rig, outcome: str = "") -> float:
    """Click events the worker finished with (of this outcome: ok, dead_letter, ...)."""
    sample = r.metrics().items()
    return sum(v for k, v in sample if k.startswith("socrec_events_total{") and "clicks" in k and f'outcome="{outcome}' in k)


def test_a_click_waits_for_an_item_its_slow_owner_applies_after_the_grace(pair: tuple[Rig, Rig]) -> None:
    a, b = pair
    item, user = key_on(owned(a), "slow-item-"), key_on(owned(b), "slow-user-")
    done, ok = clicks(b), clicks(b, "ok")
    assert a.pid is not None
    os.kill(a.pid, signal.SIGSTOP)  # the item's owner stalls (as under load at start-up)
    try:
        now = time.time()
        send(b, [ItemPublished("e-slow-item", item, now, "a song about cycling"), Click("e-slow-click", user, item, now + 0.01)])
        time.sleep(4.0)  # 20 graces; on main the click is dead-lettered here
    finally:
        os.kill(a.pid, signal.SIGCONT)
    wait_until("b to finish with the click", lambda: clicks(b) > done, [a, b], timeout=60.0)
    assert asyncio.run(dead_lettered_reasons(b, {"e-slow-click"})) == {}
    assert clicks(b, "ok") == ok + 1
    assert owned(a) and owned(b)  # nobody lost partitions: the wait was for the remote owner


def test_a_click_on_an_item_never_published_is_dead_lettered_promptly_under_a_flow_of_items(pair: tuple[Rig, Rig]) -> None:
    a, b = pair
    theirs = owned(a)
    item, user = key_on(theirs, "never-"), key_on(owned(b), "flow-user-")
    stop = threading.Event()

    def flow() -> None:  # new items keep arriving on the owner's partitions meanwhile
        n = 0
        while not stop.is_set():
            ids = [f"flow-item-{n + k}" for k in range(10)]
            n += 10
            send(a, [ItemPublished(f"e-{i}", i, time.time(), "more jazz") for i in ids if owner_partition(i, PARTITIONS) in theirs])
            time.sleep(0.5)

    producer = threading.Thread(target=flow, daemon=True)
    producer.start()
    try:
        time.sleep(2.0)
        t0 = time.monotonic()
        send(b, [Click("e-never-click", user, item, time.time())])
        reasons: dict[str, int] = {}

        def dead_lettered() -> bool:
            reasons.update(asyncio.run(dead_lettered_reasons(b, {"e-never-click"})))
            return bool(reasons)

        wait_until("the click on a never-published item to be dead-lettered", dead_lettered, [a, b], timeout=60.0)
        took = time.monotonic() - t0
    finally:
        stop.set()
        producer.join()
    print(f"dead-lettered {took:.1f} s after it was sent")
    assert reasons == {"unknown_item": 1}
    assert took < 20.0, f"dead-lettered after {took:.1f} s: the flow of new items kept it waiting"

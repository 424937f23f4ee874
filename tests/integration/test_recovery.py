"""A restarted worker rebuilds its state from the changelog-backed tables and answers the same.

Also: a worker refuses to run on existing topics that do not fit (and says why).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from socrec_online.events import Click, Follow, ItemPublished, Like, Profile, Query

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _answer(svc: Any, event_id: str) -> dict[str, Any]:
    return svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == event_id)[-1].value


def test_restarted_worker_recovers_tables_and_recommends_consistently(service_factory: Any) -> None:
    svc = service_factory("rec.")
    svc.start()
    t = time.time()
    topics = ["cycling", "baking", "astronomy", "jazz", "gardening"]
    items = [ItemPublished(f"r-item-{k}", f"r-i{k}", t, f"{topics[k % 5]} story {k}", author_id=f"r-a{k % 3}")
             for k in range(30)]  # fmt: skip
    svc.send_and_wait(*items)
    state = [
        Follow("r-f1", "r-u1", "r-u2", t + 1),
        Follow("r-f2", "r-u1", "r-u3", t + 1),
        Follow("r-f3", "r-u2", "r-u3", t + 1),
        Profile("r-p1", "r-u1", t + 1, "astronomy and jazz"),
        Like("r-l1", "r-u2", "r-i2", t + 2),
        Like("r-l2", "r-u3", "r-i2", t + 2),
        Like("r-l3", "r-u3", "r-i7", t + 2),
        Click("r-c1", "r-u1", "r-i3", t + 3),
        Click("r-c2", "r-u1", "r-i8", t + 3),
        Like("r-l4", "r-u1", "r-i12", t + 3),
    ]
    svc.send_and_wait(*state)
    ask_ts = t + 4  # the same event time before and after: same clock, same decay
    svc.send(Query("r-q1", "r-u1", ask_ts, "astronomy stories"))
    before = _answer(svc, "r-q1")
    assert before["items"], before
    assert not {"r-i3", "r-i8", "r-i12"} & {i["id"] for i in before["items"]}

    assert svc.stop() == 0  # graceful: offsets and changelogs flushed
    svc.start()  # a new process: nothing in memory, everything from the changelog topics
    log = svc.worker.log_tail(200_000)
    assert "engine restored from tables {'social': 2, 'items': 30, 'activity': 3}" in log, log[-3000:]

    svc.send(Query("r-q2", "r-u1", ask_ts, "astronomy stories"))
    after = _answer(svc, "r-q2")
    assert [i["id"] for i in after["items"]] == [i["id"] for i in before["items"]]
    for a, b in zip(after["items"], before["items"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert a["reason"] == b["reason"]
    # replaying already-applied events after the restart changes nothing (idempotent on event_id)
    svc.send_and_wait(*state)
    svc.send(Query("r-q3", "r-u1", ask_ts, "astronomy stories"))
    again = _answer(svc, "r-q3")
    assert [i["id"] for i in again["items"]] == [i["id"] for i in before["items"]]


def test_worker_refuses_topics_that_do_not_fit(service_factory: Any) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streams.app import kafka_client_kwargs

    svc = service_factory("mm.")
    want = svc.settings.partitions

    async def precreate() -> None:
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(svc.settings))
        await admin.start()
        try:
            await admin.create_topics([NewTopic("mm.clicks", want + 1, 1)])
        finally:
            await admin.close()

    asyncio.run(precreate())
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        env={**os.environ, **svc.env},
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"mm.clicks has {want + 1} partitions (want {want})" in proc.stderr
    assert "SOCREC_PARTITIONS" in proc.stderr

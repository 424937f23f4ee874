"""Retention through the real worker on a broker: an inactive user is deleted from the tables (a
changelog tombstone), and a restarted worker does not bring them back."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson
import pytest

from socrec_online.events import Click, Follow, ItemPublished

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tables(svc: Any) -> dict[str, dict[str, Any]]:
    """The worker's table state between two batches (its /debug/state route)."""
    url = f"http://127.0.0.1:{svc.env['SOCREC_METRICS_PORT']}/debug/state"
    deadline = time.monotonic() + 60
    while True:  # until the route is registered (before that the server answers with the metrics page)
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
        if body.startswith(b"{") or time.monotonic() > deadline:
            state: dict[str, dict[str, Any]] = orjson.loads(body)["tables"]
            return state
        time.sleep(0.5)


def test_an_inactive_user_is_deleted_from_the_tables_and_stays_deleted_across_a_restart(service_factory: Any) -> None:
    svc = service_factory("ret.")
    svc.env.update(SOCREC_USER_TTL_S="1000", SOCREC_RETENTION_SWEEP_S="10", SOCREC_DEBUG_STATE_ROUTE="true")
    svc.start()
    t = time.time()
    svc.send_and_wait(ItemPublished("p-old", "ret-i-old", t - 5000, "acoustic folk ballad with banjo"))
    svc.send_and_wait(Click("c-old", "ret-old", "ret-i-old", t - 4990), Follow("f-old", "ret-old", "ret-ghost", t - 4990))
    before = tables(svc)
    assert "ret-old" in before["activity"] and "ret-old" in before["social"]
    # a live event moves the event-time clock past the old user's TTL: the next sweep evicts them
    svc.send_and_wait(ItemPublished("p-new", "ret-i-new", t, "bebop saxophone jazz quartet"))
    svc.send_and_wait(Click("c-new", "ret-new", "ret-i-new", t + 1))
    after = tables(svc)
    assert "ret-old" not in after["activity"] and "ret-old" not in after["social"]
    assert "ret-new" in after["activity"] and "ret-i-new" in after["items"]
    assert svc.stop() == 0
    svc.start()
    again = tables(svc)  # rebuilt from the changelogs: the deletions are in them
    assert "ret-old" not in again["activity"] and "ret-old" not in again["social"]
    assert "ret-new" in again["activity"]

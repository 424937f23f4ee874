"""``socrec_evictions_total{kind}`` counts what the retention sweep evicted: a user once, each item
once, nothing again on a repeated sweep, nothing on a worker that only takes the deletions over."""

from __future__ import annotations

from typing import Any

from _engine_texts import T0, TEXTS

from socrec_online import metrics
from socrec_online.events import Click, Event, Follow, ItemPublished
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

TTL = 5000.0


def make(encoder: Any) -> Engine:
    settings = Settings(
        device="cpu", top_k=20, who_to_follow_k=5, user_ttl_s=TTL, item_ttl_s=3000.0,
        item_retention_s=1000.0, retention_sweep_s=100.0,
    )  # fmt: skip
    return Engine(settings, encoder)


def catalogue(ts: float, prefix: str) -> list[Event]:
    return [ItemPublished(f"pub-{prefix}{i}", f"{prefix}{i}", ts + i, TEXTS[i], author_id="zed") for i in range(8)]


def evicted() -> dict[str, float]:
    return {k: metrics.sample("socrec_evictions_total", {"kind": k}) or 0.0 for k in ("users", "items")}


def test_sweep_counts_each_evicted_user_and_item_once(encoder: Any) -> None:
    eng = make(encoder)
    mirror = make(encoder)  # another worker: takes this one's values and deletions over
    first = eng.step([
        *catalogue(T0, "i"),
        Click("c1", "clicker", "i1", T0 + 10),  # activity value only
        Follow("f1", "follower", "zed", T0 + 11),  # follows value only
        Click("c2", "both", "i2", T0 + 12), Follow("f2", "both", "clicker", T0 + 13),  # both values
    ])  # fmt: skip
    mirror.upsert(first["table_updates"])
    # both series exist before any eviction (the dashboard plots 0, not "no data")
    assert all(metrics.sample("socrec_evictions_total", {"kind": k}) is not None for k in ("users", "items"))
    before = evicted()
    later = T0 + TTL + 500  # past the user TTL and the items' TTL + retention
    dels = eng.step([*catalogue(later, "n"), Click("c3", "new", "n1", later + 20)])["table_updates"]
    gone_users = {k for t in ("activity", "social") for k, v in dels.get(t, {}).items() if v is None}
    gone_items = {k for k, v in dels.get("items", {}).items() if v is None}
    assert gone_users == {"clicker", "follower", "both"} and gone_items == {f"i{i}" for i in range(8)}
    after = evicted()
    assert after["users"] - before["users"] == 3  # "both" lost two values: one user evicted
    assert after["items"] - before["items"] == 8
    assert eng.expire() == {}  # a second sweep finds nothing and counts nothing
    mirror.upsert(dels)  # the mirror removes the same keys, but it is not the one that evicted them
    assert "both" not in mirror.activity and "i1" not in mirror.item_state
    assert evicted() == after

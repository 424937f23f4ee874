"""The stream worker on a real broker: what a producer sends, what ``recommendations`` says.

One worker serves this module (each test uses its own users and items); it is started on
topics that do not exist yet, so it also proves topic creation.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import orjson
import pytest

from socrec_online.events import Click, Comment, Follow, ItemPublished, Like, Profile, Query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = (
    "clicks", "likes", "comments", "follows", "items", "profiles", "queries",
    "recommendations", "dead-letters", "model-updates",
)  # fmt: skip


@pytest.fixture(scope="module")
def svc(service_factory) -> Any:  # type: ignore[no-untyped-def]
    s = service_factory("svc.")
    s.start()
    return s


def _items(rec) -> list[str]:  # type: ignore[no-untyped-def]
    return [i["id"] for i in rec.value["items"]]


def test_worker_creates_absent_topics_with_configured_partitions(svc: Any) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.app import kafka_client_kwargs

    async def describe() -> dict[str, int]:
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(svc.settings))
        await admin.start()
        try:
            names = set(await admin.list_topics())
            wanted = [f"svc.{t}" for t in TOPICS]
            missing = [n for n in wanted if n not in names]
            assert not missing, f"worker did not create {missing}"
            return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(wanted)}
        finally:
            await admin.close()

    parts = asyncio.run(describe())
    assert parts == {f"svc.{t}": svc.settings.partitions for t in TOPICS}
    assert svc.settings.partitions != 4  # Tansu's auto-create default: these were made by the worker


def test_followee_like_is_recommended_with_social_reason(svc: Any) -> None:
    t = time.time()
    texts = {
        "s-i1": "vintage road bikes and cycling gear",
        "s-i2": "sourdough bread baking at home",
        "s-i3": "deep sea creatures of the abyss",
        "s-i4": "jazz piano improvisation lessons",
    }
    svc.send_and_wait(
        *(ItemPublished(f"s-item-{i}", i, t, txt, author_id="s-author") for i, txt in texts.items())
    )
    # bob likes two items; alice, with no history of her own, follows bob: she should see them at once
    svc.send(Like("s-l1", "s-bob", "s-i3", t + 1), Like("s-l2", "s-bob", "s-i2", t + 1.5))
    svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == "s-l2")
    svc.send(Follow("s-f1", "s-alice", "s-bob", t + 2))
    recs = svc.wait_for(
        "recommendations",
        lambda r: (
            r.value.get("user_id") == "s-alice"
            and r.value.get("source_event_id") == "s-f1"
            and r.value.get("kind") == "items"
        ),
    )
    rec = recs[-1].value
    assert rec["model_version"] == "zero-shot"
    by_id = {i["id"]: i for i in rec["items"]}
    assert "s-i3" in by_id and "s-i2" in by_id, rec
    # the reason credits the followee's like, in the words (social proof is the most
    # persuasive evidence, so it wins over her empty history's text match)
    for iid in ("s-i3", "s-i2"):
        assert by_id[iid]["reason"] == "liked by 1 person you follow", by_id[iid]
    # her own click later never brings the clicked item back, and bob's likes stay in her list
    svc.send(Click("s-c1", "s-alice", "s-i3", t + 3))
    after = svc.wait_for(
        "recommendations",
        lambda r: r.value.get("source_event_id") == "s-c1" and r.value.get("kind") == "items",
    )[-1].value
    assert "s-i3" not in {i["id"] for i in after["items"]}
    assert "s-i2" in {i["id"] for i in after["items"]}
    assert all(math.isfinite(i["score"]) for i in rec["items"])
    # who-to-follow comes from the social tower for the same trigger
    users = svc.wait_for(
        "recommendations",
        lambda r: r.value.get("user_id") == "s-alice" and r.value.get("kind") == "users",
    )
    assert all(u["id"] not in ("s-alice", "s-bob") for u in users[-1].value["items"])


def test_seen_items_never_come_back(svc: Any) -> None:
    t = time.time()
    ids = [f"n-i{k}" for k in range(8)]
    svc.send_and_wait(
        *(ItemPublished(f"n-item-{i}", i, t, f"garden plants number {i} tomatoes herbs") for i in ids)
    )
    # one at a time: each recommendation then reflects every engagement before its trigger
    for ev in (
        Profile("n-p1", "n-carol", t + 1, "gardening tomatoes herbs"),
        Click("n-c1", "n-carol", "n-i0", t + 2),
        Like("n-l1", "n-carol", "n-i1", t + 3),
        Comment("n-m1", "n-carol", "n-i2", t + 4, "lovely tomatoes, great herbs"),
    ):
        svc.send_and_wait(ev)
    svc.send(Click("n-c2", "n-carol", "n-i3", t + 5))
    svc.send(Click("n-c3", "n-carol", "n-i4", t + 6))
    svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == "n-c3")
    seen_after: dict[str, set[str]] = {
        "n-c1": {"n-i0"},
        "n-l1": {"n-i0", "n-i1"},
        "n-m1": {"n-i0", "n-i1", "n-i2"},
        "n-c2": {"n-i0", "n-i1", "n-i2", "n-i3"},
        "n-c3": {"n-i0", "n-i1", "n-i2", "n-i3", "n-i4"},
    }
    recs = svc.recs_for("n-carol")
    assert recs, "carol got no recommendations"
    for r in recs:
        seen = seen_after.get(r.value["source_event_id"], set())
        assert not seen & set(_items(r)), (r.value["source_event_id"], _items(r))
    final = [r for r in recs if r.value["source_event_id"] == "n-c3"][-1]
    assert set(_items(final)) & {"n-i5", "n-i6", "n-i7"}, "unseen garden items should be recommended"


def test_bad_events_are_dead_lettered_and_good_ones_around_them_processed(svc: Any) -> None:
    t = time.time()
    svc.send_and_wait(
        ItemPublished("d-item-1", "d-i1", t, "mountain hiking trails"),
        ItemPublished("d-item-2", "d-i2", t, "alpine lakes and summits"),
    )
    before = svc.processed()
    good1 = svc.send_raw(
        "clicks",
        "d-user",
        orjson.dumps({"event_id": "d-g1", "user_id": "d-user", "item_id": "d-i1", "ts": t + 1}),
    )
    bad = {
        "bad_json": svc.send_raw("clicks", "d-user", b'{"event_id": "x", "user_id": '),
        "missing_field": svc.send_raw(
            "clicks", "d-user", orjson.dumps({"event_id": "d-b2", "user_id": "d-user", "ts": t})
        ),
        "wrong_type": svc.send_raw(
            "likes", "d-user", orjson.dumps({"event_id": "d-b3", "user_id": "d-user", "item_id": 7, "ts": t})
        ),
        "not_finite": svc.send_raw(
            "clicks", "d-user", b'{"event_id": "d-b4", "user_id": "d-user", "item_id": "d-i1", "ts": NaN}'
        ),
        "self_follow": svc.send_raw(
            "follows",
            "d-user",
            orjson.dumps({"event_id": "d-b5", "user_id": "d-user", "target_id": "d-user", "ts": t}),
        ),
        "text_too_long": svc.send_raw(
            "comments",
            "d-user",
            orjson.dumps(
                {
                    "event_id": "d-b6",
                    "user_id": "d-user",
                    "item_id": "d-i1",
                    "ts": t,
                    "text": "x" * (svc.settings.max_text_bytes + 1),
                }
            ),
        ),
        "unknown_item": svc.send_raw(
            "clicks",
            "d-user",
            orjson.dumps({"event_id": "d-b7", "user_id": "d-user", "item_id": "d-nope", "ts": t}),
        ),
    }
    svc.send_raw(
        "likes",
        "d-user",
        orjson.dumps({"event_id": "d-g2", "user_id": "d-user", "item_id": "d-i2", "ts": t + 2}),
    )

    dead = svc.wait_for("dead-letters", lambda r: r.key == b"d-user", n=len(bad))
    by_origin = {(r.value["topic"], r.value["partition"], r.value["offset"]): r.value for r in dead}
    for reason, md in bad.items():
        origin = (md.topic.removeprefix("svc."), md.partition, md.offset)
        assert origin in by_origin, (reason, origin, list(by_origin))
        d = by_origin[origin]
        assert d["reason"] == reason, d
        assert d["error"] and isinstance(d["payload"], str)
    assert len(
        by_origin[
            (
                bad["text_too_long"].topic.removeprefix("svc."),
                bad["text_too_long"].partition,
                bad["text_too_long"].offset,
            )
        ]["payload"]
    ) <= (svc.settings.dead_letter_payload_bytes + 16)

    # the good events around the bad ones were processed, in order
    assert good1.offset < bad["bad_json"].offset
    svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == "d-g2")
    deadline = time.monotonic() + 30
    while svc.processed() < before + len(bad) + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    # a query (another topic: sent only once the engagements are in) never returns engaged items
    svc.send(Query("d-q1", "d-user", t + 3, "hiking in the mountains"))
    answer = svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == "d-q1")[-1].value
    assert answer["kind"] == "query" and answer["user_id"] == "d-user"
    assert not {"d-i1", "d-i2"} & {i["id"] for i in answer["items"]}  # engaged before the query
    assert svc.worker.alive()


def test_click_that_overtakes_its_item_waits_for_it_instead_of_dead_lettering(svc: Any) -> None:
    t = time.time()
    # the click is produced (and can be consumed) before the item it refers to exists
    svc.send(Click("o-c1", "o-user", "o-i1", t))
    time.sleep(0.5)
    svc.send(ItemPublished("o-item-1", "o-i1", t, "late arriving item about kayaks"))
    rec = svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == "o-c1")[-1].value
    assert rec["user_id"] == "o-user" and "o-i1" not in {i["id"] for i in rec["items"]}
    assert not [r for r in svc.records("dead-letters") if r.key == b"o-user"]


def test_changelog_topics_are_compacted(svc: Any, broker_kind: str) -> None:
    """A table's changelog keeps each key's last value, however long the service runs."""
    if broker_kind == "embedded":
        pytest.skip("the embedded broker has no compaction (and no topic configs to describe)")
    from confluent_kafka.admin import AdminClient, ConfigResource

    from socrec_online.service.engine import Engine

    names = [f"{svc.settings.app_id}-{t}-changelog" for t in Engine.TABLES]
    admin = AdminClient({"bootstrap.servers": svc.settings.kafka_bootstrap})
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
    got = {res.name: fut.result(timeout=30)["cleanup.policy"].value for res, fut in futures.items()}
    assert got == dict.fromkeys(names, "compact")

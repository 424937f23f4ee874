"""Issue #19 as a new user tried it: a confluent-kafka producer on its default settings sends
malformed records of every kind to a running worker, keyed by user id, spread over four topics, then
one good click. The worker stays up (same process), every bad record is dead-lettered exactly once,
and the good click is answered; a restarted worker reads the same log and stays up too."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

NOW = time.time()


def bad_records() -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value): 15 kinds of hostile value on each of four topics."""
    big = "x" * 300_000
    out: list[tuple[str, bytes | None, bytes]] = []
    for topic in ("clicks", "likes", "comments", "follows"):
        other = "target_id" if topic == "follows" else "item_id"
        good = {"event_id": f"{topic}-e", "user_id": "hu1", other: "hi1", "ts": NOW}
        if topic == "comments":
            good["text"] = "nice"
        if topic == "follows":
            good[other] = "hu2"
        variants: list[bytes] = [
            b"{not json",
            b"\xff\xfe\xfa invalid utf-8",
            b"[]",
            b"null",
            b"42",
            orjson.dumps({k: v for k, v in good.items() if k != "user_id"}),
            orjson.dumps({k: v for k, v in good.items() if k != other}),
            orjson.dumps({**good, other: 17}),
            orjson.dumps({**good, "ts": "yesterday"}),
            orjson.dumps(good).replace(str(NOW).encode(), b"NaN"),
            orjson.dumps({**good, "text": big} if topic == "comments" else {**good, "event_id": big}),
            orjson.dumps({**good, "target_id": "hu1"} if topic == "follows" else {**good, "user_id": ""}),
            orjson.dumps({**good, "user_id": ""}),
            orjson.dumps({**good, "dwell_ms": 1e20} if topic == "clicks" else {**good, "ts": -5}),
            b"",
        ]
        out += [(topic, b"hu1", v) for v in variants]
    return out


def test_a_confluent_producer_sending_hostile_records_never_stops_the_worker(service_factory: Any) -> None:
    from confluent_kafka import Producer

    svc = service_factory("hostile.")
    svc.start()
    pid = svc.worker.pid
    svc.send_raw("items", "hi1", orjson.dumps({"event_id": "it1", "item_id": "hi1", "ts": NOW, "text": "jazz"}))

    producer = Producer({"bootstrap.servers": svc.env["SOCREC_KAFKA_BOOTSTRAP"]})  # its defaults otherwise
    origins: list[tuple[str, int, int]] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        origins.append((msg.topic()[len(svc.prefix) :], msg.partition(), msg.offset()))

    bad = bad_records()
    for topic, key, value in bad:
        producer.produce(svc.prefix + topic, value=value, key=key, on_delivery=delivered)
    click = {"event_id": "good-click", "user_id": "hu9", "item_id": "hi1", "ts": NOW, "dwell_ms": 5000}
    producer.produce(svc.prefix + "clicks", value=orjson.dumps(click), key=b"hu9")
    assert producer.flush(30) == 0
    assert len(origins) == len(bad)

    answered = svc.wait_for(
        "recommendations", lambda r: isinstance(r.value, dict) and r.value.get("source_event_id") == "good-click"
    )
    assert answered
    dead = svc.wait_for("dead-letters", lambda r: isinstance(r.value, dict), n=len(bad), timeout=90)
    time.sleep(3)  # a repeat would come after the first
    dead = [r.value for r in svc.records("dead-letters")]
    by_origin = [(d["topic"], d["partition"], d["offset"]) for d in dead]
    assert sorted(by_origin) == sorted(origins), "each bad record dead-lettered once, with its origin"
    assert svc.worker.alive() and svc.worker.pid == pid

    # the same log read again by a new worker process: still up, nothing dead-lettered twice more
    svc.stop()
    svc.start()
    probe = {"event_id": "probe-click", "user_id": "hu8", "item_id": "hi1", "ts": time.time()}
    producer.produce(svc.prefix + "clicks", value=orjson.dumps(probe), key=b"hu8")
    assert producer.flush(30) == 0
    svc.wait_for("recommendations", lambda r: isinstance(r.value, dict) and r.value.get("source_event_id") == "probe-click")
    assert svc.worker.alive()
    assert len(svc.records("dead-letters")) == len(bad)  # committed before the stop: not read again

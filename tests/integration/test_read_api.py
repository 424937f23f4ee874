"""The read API of a running worker on a real broker (issue 22, item 3): events produced with
confluent-kafka on its default settings (its own partitioner) are read back over HTTP, with the
bearer token, 401/404, the list last published, one computed now, who-to-follow, a query answered
without writing to Kafka, the OpenAPI document and /readyz; with no token nothing listens."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from socrec_online.events import Event, Follow, ItemPublished, Like, key_of, to_dict, topic_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "it-read-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def produce_with_confluent(svc: Any, events: list[Event]) -> None:
    """As a user would: confluent_kafka.Producer with no partitioner setting, key = the owner id."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": svc.env["SOCREC_KAFKA_BOOTSTRAP"]})
    for ev in events:
        p.produce(f"{svc.prefix}{topic_of(ev)}", key=key_of(ev).encode(), value=orjson.dumps(to_dict(ev)))
        p.poll(0)
    assert p.flush(30) == 0


def latest_on_topic(svc: Any, user_id: str, kind: str) -> dict[str, Any] | None:
    recs = sorted(svc.recs_for(user_id, kind), key=lambda r: r.timestamp)
    return recs[-1].value if recs else None


def test_events_from_confluent_kafka_are_read_back_over_http(service_factory: Callable[[str], Any]) -> None:
    svc = service_factory("api.")
    svc.env["SOCREC_API_TOKEN"] = TOKEN
    svc.start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{svc.env['SOCREC_WEB_PORT']}", timeout=30)
    ops = httpx.Client(base_url=f"http://127.0.0.1:{svc.env['SOCREC_METRICS_PORT']}", timeout=30)
    assert ops.get("/readyz").status_code == 200  # the ready file is written after the restore

    t0 = time.time() - 60
    items = [
        ItemPublished(f"api-pub-{i}", f"api-j{i}", t0 + i, f"bebop saxophone jazz quartet {i}", author_id="api-artist")
        for i in range(6)
    ]
    social = [Follow("api-f1", "api-bob", "api-alice", t0 + 10), Like("api-l1", "api-alice", "api-j3", t0 + 11)]
    produce_with_confluent(svc, items + social)

    # bob's lists are published (his follow, then alice's like as social proof); the API serves the last
    deadline = time.monotonic() + 90
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = latest_on_topic(svc, "api-bob", "items")
        got = api.get("/v1/users/api-bob/recommendations", headers=AUTH)
        if got.status_code == 200:
            body = got.json()
            social_proof = any("you follow" in e["reason"] for e in body["items"])
            if last is not None and body["rec_id"] == last["rec_id"] and body["source"] == "published" and social_proof:
                break
        time.sleep(0.5)
    else:
        pytest.fail(f"no published list for api-bob over HTTP: last {body}\n{svc.worker.log_tail()}")
    assert body["model_version"] == last["model_version"] == "zero-shot"
    assert [e["id"] for e in body["items"]] == [e["id"] for e in last["items"]]
    assert 0 <= body["age_s"] < 120 and body["kind"] == "items"
    assert any(e["id"] == "api-j3" and "you follow" in e["reason"] for e in body["items"])  # alice's like

    users = api.get("/v1/users/api-bob/recommendations", params={"kind": "users"}, headers=AUTH)
    assert users.status_code == 200 and users.json()["kind"] == "users"

    # the artist is known (an item author) but never published to: scored now, in the engine process
    artist = api.get("/v1/users/api-artist/recommendations", headers=AUTH).json()
    assert artist["source"] == "computed" and 0 <= artist["age_s"] < 5 and artist["user_id"] == "api-artist"

    assert api.get("/v1/users/api-nobody/recommendations", headers=AUTH).status_code == 404
    assert api.get("/v1/users/api-bob/recommendations").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert api.get("/v1/users/api-bob/recommendations", headers=wrong).status_code == 401

    # a query is answered now and nothing is written to Kafka
    topics_before = {t: len(svc.records(t)) for t in ("recommendations", "queries")}
    asked = api.post("/v1/queries", json={"user_id": "api-bob", "text": "saxophone quartet", "k": 2}, headers=AUTH)
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert answer["kind"] == "query" and 1 <= len(answer["items"]) <= 2 and answer["source_event_id"] is None
    assert api.post("/v1/queries", json={"user_id": "api-bob"}, headers=AUTH).status_code == 400
    assert api.post("/v1/queries", json={"user_id": "api-nobody", "text": "jazz"}, headers=AUTH).status_code == 404
    time.sleep(1.0)
    assert {t: len(svc.records(t)) for t in topics_before} == topics_before

    doc = api.get("/v1/openapi.json").json()
    assert {"/v1/users/{user_id}/recommendations", "/v1/queries"} <= set(doc["paths"])
    scraped = ops.get("/metrics").text
    assert 'socrec_api_requests_total{code="404",route="/v1/users/{user_id}/recommendations"}' in scraped


def test_without_a_token_nothing_listens_on_the_web_port(service_factory: Callable[[str], Any]) -> None:
    svc = service_factory("apioff.")
    svc.env.pop("SOCREC_API_TOKEN", None)
    svc.start()
    assert httpx.get(f"http://127.0.0.1:{svc.env['SOCREC_METRICS_PORT']}/readyz", timeout=30).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{svc.env['SOCREC_WEB_PORT']}/v1/openapi.json", timeout=10)

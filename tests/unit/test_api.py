"""The read API over real HTTP (aiohttp server on a loopback port, httpx client) with a fake engine
backend: auth, validation, readiness, 404, the cache of published lists, the OpenAPI document and
the metrics. Against a real worker and Kafka: tests/integration/test_read_api.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from socrec_online import metrics, ops_http
from socrec_online.api.auth import api_token, authorized
from socrec_online.api.latest import LatestLists
from socrec_online.api.reads import NotReady, ReadService
from socrec_online.service.remote import Encoded
from socrec_online.settings import Settings
from streams.api import ApiServer

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECS = "/v1/users/{user_id}/recommendations"


def payload(user_id: str, kind: str, ids: list[str], ts: float, version: str = "zero-shot") -> dict[str, Any]:
    return {
        "user_id": user_id, "ts": ts, "model_version": version, "kind": kind,
        "items": [{"id": i, "score": 1.0 - n / 10, "reason": f"r{n}"} for n, i in enumerate(ids)],
        "source_event_id": None, "rec_id": f"rec-{user_id}-{kind}", "schema_version": 1,
    }  # fmt: skip


class FakeBackend:
    """Knows ``users``; records every engine call; may be not ready, or time out."""

    def __init__(self, users: set[str]) -> None:
        self.users = users
        self.is_ready = True
        self.raises: type[Exception] | None = None
        self.calls: list[tuple[Any, ...]] = []

    def ready(self) -> bool:
        return self.is_ready

    async def recommend_now(self, user_id: str, kind: str) -> dict[str, Any] | None:
        self.calls.append(("recommend_now", user_id, kind))
        if self.raises is not None:
            raise self.raises()
        return payload(user_id, kind, [f"{kind}-{user_id}-a", f"{kind}-{user_id}-b"], time.time(), "v7") \
            if user_id in self.users else None  # fmt: skip

    async def answer_now(self, user_id: str, text: str, k: int | None) -> dict[str, Any] | None:
        self.calls.append(("answer_now", user_id, text, k))
        if user_id not in self.users:
            return None
        ids = [f"q{n}" for n in range(k or 5)]
        return payload(user_id, "query", ids, time.time(), "v7")


Scenario = Callable[[httpx.AsyncClient, FakeBackend, LatestLists], Awaitable[None]]


def serve(scenario: Scenario, users: set[str] | None = None, cache_users: int = 10) -> FakeBackend:
    backend = FakeBackend({"alice", "bob"} if users is None else users)
    latest = LatestLists(cache_users)
    service = ReadService(backend, latest, SecretStr(TOKEN), max_id_chars=32, max_text_bytes=64)

    async def go() -> None:
        server = ApiServer(service, "127.0.0.1", 0, max_body_bytes=64 + 4096)
        port = await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                await scenario(client, backend, latest)
        finally:
            await server.stop()

    asyncio.run(go())
    return backend


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["no-token", "wrong-token", "no-scheme", "basic"],
)
def test_without_the_bearer_token_every_data_route_answers_401_and_calls_no_engine(headers: dict[str, str]) -> None:
    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        got = await client.get(RECS.format(user_id="alice"), headers=headers)
        assert got.status_code == 401 and got.json()["error"] == "unauthorized"
        assert got.headers["WWW-Authenticate"].startswith("Bearer")
        got = await client.post("/v1/queries", json={"user_id": "alice", "text": "jazz"}, headers=headers)
        assert got.status_code == 401
        got = await client.post("/v1/queries", content=b"not json", headers=headers)
        assert got.status_code == 401  # the token is checked before the body

    assert serve(scenario).calls == []


def test_a_known_user_gets_a_list_computed_now_and_an_unknown_one_404() -> None:
    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        got = await client.get(RECS.format(user_id="alice"), headers=AUTH)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["user_id"] == "alice" and body["kind"] == "items" and body["source"] == "computed"
        assert [e["id"] for e in body["items"]] == ["items-alice-a", "items-alice-b"]
        assert body["model_version"] == "v7" and 0.0 <= body["age_s"] < 5.0
        users = (await client.get(RECS.format(user_id="alice"), params={"kind": "users"}, headers=AUTH)).json()
        assert users["kind"] == "users" and users["items"][0]["id"] == "users-alice-a"
        missing = await client.get(RECS.format(user_id="nobody"), headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        # read again: the computed list is kept (no second engine call) until one is published
        again = (await client.get(RECS.format(user_id="alice"), headers=AUTH)).json()
        assert again["source"] == "computed" and again["items"] == body["items"]
        latest.put([Encoded.of(payload("alice", "items", ["pub"], time.time(), "v8"))])
        published = (await client.get(RECS.format(user_id="alice"), headers=AUTH)).json()
        assert published["source"] == "published" and [e["id"] for e in published["items"]] == ["pub"]

    calls = serve(scenario).calls
    assert calls == [("recommend_now", "alice", "items"), ("recommend_now", "alice", "users"),
                     ("recommend_now", "nobody", "items")]  # fmt: skip


def test_the_last_published_list_is_served_with_its_age_and_the_cache_is_bounded() -> None:
    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        old = payload("bob", "items", ["old"], time.time() - 30, "v1")
        new = payload("bob", "items", ["new1", "new2"], time.time() - 5, "v2")
        latest.put([Encoded.of(old), Encoded.of(payload("bob", "query", ["q"], time.time()))])
        latest.put([Encoded.of(new)])
        body = (await client.get(RECS.format(user_id="bob"), headers=AUTH)).json()
        assert body["source"] == "published" and [e["id"] for e in body["items"]] == ["new1", "new2"]
        assert body["model_version"] == "v2" and 4.5 < body["age_s"] < 60
        assert body["rec_id"] == "rec-bob-items"
        # who-to-follow was never published for bob: computed now
        assert (await client.get(RECS.format(user_id="bob"), params={"kind": "users"}, headers=AUTH)).json()[
            "source"
        ] == "computed"
        # a user published once, but past the bound of 2 users, is computed again
        latest.put([Encoded.of(payload(u, "items", ["x"], time.time())) for u in ("u1", "u2")])
        assert len(latest) == 2 and latest.get("bob", "items") is None
        backend.users.add("u1")
        assert (await client.get(RECS.format(user_id="u1"), headers=AUTH)).json()["source"] == "published"

    calls = serve(scenario, cache_users=2).calls
    assert calls == [("recommend_now", "bob", "users")]


def test_queries_are_answered_with_k_and_invalid_bodies_are_400() -> None:
    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        got = await client.post("/v1/queries", json={"user_id": "alice", "text": "bebop jazz", "k": 3}, headers=AUTH)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["kind"] == "query" and len(body["items"]) == 3 and body["source"] == "computed"
        for bad in (
            {"user_id": "alice"},  # no text
            {"user_id": "alice", "text": ""},
            {"user_id": "alice", "text": " \n\t"},
            {"user_id": "alice", "text": "jazz", "k": 0},
            {"user_id": "alice", "text": "jazz", "extra": 1},
            {"user_id": "alice", "text": "x" * 65},  # over max_text_bytes
            {"user_id": "u" * 33, "text": "jazz"},  # over max_id_chars
        ):
            got = await client.post("/v1/queries", json=bad, headers=AUTH)
            assert got.status_code == 400 and got.json()["error"] == "invalid", bad
        missing = await client.post("/v1/queries", json={"user_id": "nobody", "text": "jazz"}, headers=AUTH)
        assert missing.status_code == 404
        assert (await client.post("/v1/queries", content=b"{not json", headers=AUTH)).status_code == 400
        assert (await client.post("/v1/queries", content=b"x" * 10_000, headers=AUTH)).status_code == 400
        assert (await client.get(RECS.format(user_id="alice"), params={"kind": "x"}, headers=AUTH)).status_code == 400

    calls = serve(scenario).calls
    assert calls == [("answer_now", "alice", "bebop jazz", 3), ("answer_now", "nobody", "jazz", None)]


def test_503_before_the_engine_is_restored_and_when_it_stays_busy() -> None:
    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        backend.is_ready = False
        got = await client.get(RECS.format(user_id="alice"), headers=AUTH)
        assert got.status_code == 503 and got.json()["error"] == "not_ready" and got.headers["Retry-After"]
        got = await client.post("/v1/queries", json={"user_id": "alice", "text": "jazz"}, headers=AUTH)
        assert got.status_code == 503
        backend.is_ready = True
        for raised, error in ((TimeoutError, "busy"), (NotReady, "not_ready")):
            backend.raises = raised
            got = await client.get(RECS.format(user_id="alice"), headers=AUTH)
            assert got.status_code == 503 and got.json()["error"] == error
        backend.raises = None
        assert (await client.get(RECS.format(user_id="alice"), headers=AUTH)).status_code == 200

    serve(scenario)


def test_the_openapi_document_lists_the_routes_without_a_token() -> None:
    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        got = await client.get("/v1/openapi.json")
        assert got.status_code == 200
        doc = got.json()
        assert doc["openapi"].startswith("3.")
        assert set(doc["paths"]) == {RECS, "/v1/queries", "/v1/openapi.json"}
        get = doc["paths"][RECS]["get"]
        assert {"200", "401", "404", "503"} <= set(get["responses"]) and get["security"] == [{"bearer": []}]
        schemas = doc["components"]["schemas"]
        assert {"age_s", "model_version", "items"} <= set(schemas["RecommendationList"]["properties"])
        assert schemas["QueryRequest"]["required"] == ["user_id", "text"]
        assert (await client.get("/v1/nothing", headers=AUTH)).status_code == 404

    serve(scenario)


def test_requests_are_counted_by_route_template_never_by_user_id() -> None:
    route = RECS

    def count(code: str) -> float:
        return metrics.sample("socrec_api_requests_total", {"route": route, "code": code}) or 0.0

    before = {c: count(c) for c in ("200", "401", "404")}
    seconds = metrics.sample("socrec_api_request_duration_seconds_count", {"route": route}) or 0.0

    async def scenario(client: httpx.AsyncClient, backend: FakeBackend, latest: LatestLists) -> None:
        await client.get(RECS.format(user_id="alice"), headers=AUTH)
        await client.get(RECS.format(user_id="alice"))
        await client.get(RECS.format(user_id="zed"), headers=AUTH)

    serve(scenario)
    assert {c: count(c) - before[c] for c in before} == {"200": 1.0, "401": 1.0, "404": 1.0}
    assert metrics.sample("socrec_api_request_duration_seconds_count", {"route": route}) == seconds + 3
    exposed = metrics.REGISTRY.collect()
    labels = {v for fam in exposed if fam.name.startswith("socrec_api") for s in fam.samples for v in s.labels.values()}
    assert not any("alice" in v or "zed" in v for v in labels)


def test_the_api_is_off_without_a_token_and_compares_tokens_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOCREC_API_TOKEN", raising=False)
    assert api_token(Settings()) is None
    assert api_token(Settings(api_token="")) is None  # an empty variable (compose's default) is off too
    token = api_token(Settings(api_token=TOKEN))
    assert token is not None and TOKEN not in repr(Settings(api_token=TOKEN))
    assert authorized(f"Bearer {TOKEN}", token) and authorized(f"bearer  {TOKEN} ", token)
    assert not authorized(f"Bearer {TOKEN}x", token) and not authorized("Bearer", token) and not authorized(None, token)


def test_readyz_on_the_metrics_server_is_503_until_the_restore_then_200() -> None:
    from streams.liveness import install_ready_route

    port = ops_http.start_metrics_server("127.0.0.1", 0)
    try:
        readiness = install_ready_route()
        got = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert got.status_code == 503 and got.json()["status"] == "recovering"
        readiness.set()  # what the pipeline's first restore does (streams/worker.py ready())
        got = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert got.status_code == 200 and got.json() == {"status": "ready"}
    finally:
        ops_http.remove_route("/readyz")
        ops_http.stop_metrics_server()

"""The worker's read API over HTTP (aiohttp, on the worker's event loop): docs/api.md.

The logic lives in ``socrec_online.api`` (auth, validation, cache, answers); this module adapts the
pipeline to its ``Backend`` (engine calls between two batches, on the engine's one thread, bounded
by ``REQUEST_TIMEOUT_S``), serves the routes and counts them. Started by ``socrec worker`` when
``SOCREC_API_TOKEN`` is set; with it unset nothing listens on ``SOCREC_WEB_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from socrec_online import metrics
from socrec_online.api.auth import api_token
from socrec_online.api.latest import LatestLists
from socrec_online.api.openapi import OPENAPI_PATH, QUERIES_PATH, RECOMMENDATIONS_PATH, openapi_document
from socrec_online.api.reads import JSON, ReadService, Reply
from socrec_online.health import Readiness
from socrec_online.settings import Settings
from streams.pipeline import Pipeline

REQUEST_TIMEOUT_S = 10.0
"""Longest an engine read waits (a batch holding the engine, then the scoring) before a 503 busy."""
SHUTDOWN_TIMEOUT_S = 2.0


class PipelineReads:
    """``socrec_online.api.reads.Backend`` over a running pipeline and its engine."""

    def __init__(self, pipeline: Pipeline, readiness: Readiness, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.pipeline, self.readiness, self.timeout_s = pipeline, readiness, timeout_s

    def ready(self) -> bool:
        return self.readiness.ready

    async def recommend_now(self, user_id: str, kind: str) -> dict[str, Any] | None:
        p = self.pipeline
        result: dict[str, Any] | None = await asyncio.wait_for(
            p.between_batches(p.engine.recommend_now, user_id, kind), self.timeout_s
        )
        return result

    async def answer_now(self, user_id: str, text: str, k: int | None) -> dict[str, Any] | None:
        p = self.pipeline
        result: dict[str, Any] | None = await asyncio.wait_for(
            p.between_batches(p.engine.answer_now, user_id, text, k), self.timeout_s
        )
        return result


def _response(reply: Reply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, content_type=JSON, headers=reply.headers)


@web.middleware
async def _observe(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """Count and time every request by route template (never the path: it holds a user id)."""
    info = request.match_info
    route = info.route.resource.canonical if info.route.resource is not None else "unmatched"
    t0 = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        metrics.API_SECONDS.labels(route=route).observe(time.perf_counter() - t0)
        metrics.API_REQUESTS.labels(route=route, code=str(code)).inc()


def make_web_app(service: ReadService, max_body_bytes: int) -> web.Application:
    """The aiohttp application: the two data routes and the OpenAPI document."""
    openapi = orjson.dumps(openapi_document())

    async def get_recommendations(request: web.Request) -> web.Response:
        reply = await service.recommendations(
            request.headers.get("Authorization"), request.match_info["user_id"], request.query.get("kind")
        )
        return _response(reply)

    async def post_query(request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b"\x00"  # answered like any other invalid body (after the token check)
        return _response(await service.query(authorization, body))

    async def get_openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi, content_type=JSON)

    app = web.Application(middlewares=[_observe], client_max_size=max_body_bytes)
    app.router.add_get(RECOMMENDATIONS_PATH, get_recommendations)
    app.router.add_post(QUERIES_PATH, post_query)
    app.router.add_get(OPENAPI_PATH, get_openapi)
    return app


class ApiServer:
    """The read API listening on ``host:port`` on the running event loop."""

    def __init__(self, service: ReadService, host: str, port: int, max_body_bytes: int) -> None:
        self.host, self.port = host, port
        self._runner = web.AppRunner(
            make_web_app(service, max_body_bytes), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )

    async def start(self) -> int:
        """Listen; returns the port (the bound one when ``port`` is 0)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._runner.cleanup()


def api_server(settings: Settings, pipeline: Pipeline, readiness: Readiness) -> ApiServer | None:
    """The API for this worker's pipeline (hooked to its publishes), or None when no token is set."""
    token = api_token(settings)
    if token is None:
        return None
    latest = LatestLists(settings.api_cache_users)
    pipeline.on_publish = latest.put
    service = ReadService(
        PipelineReads(pipeline, readiness),
        latest,
        token,
        max_id_chars=settings.max_id_chars,
        max_text_bytes=settings.max_text_bytes,
    )
    # a body a little over the text bound still parses, so its answer is the 400 that names the bound
    return ApiServer(service, settings.web_host, settings.web_port, settings.max_text_bytes + 4096)

"""The read API's request logic, HTTP-free: auth, validation, cache or engine, and the answer.

Order of checks: a request without the bearer token gets 401 (nothing else is revealed), then
400 for what cannot be valid, 503 while the worker restores its engine from its tables (or the
engine stays busy past the backend's timeout), 404 for a user the engine does not know, 200.
Reads change nothing: no event is written, the engine's state and what it publishes are unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, SecretStr, ValidationError

from socrec_online.api.auth import authorized
from socrec_online.api.latest import LatestLists
from socrec_online.api.models import ApiError, QueryRequest, RecommendationList

JSON = "application/json"


class NotReady(Exception):
    """The engine is not restored from the tables yet."""


class Backend(Protocol):
    """What the API needs of the worker (``streams/api.py`` adapts the pipeline and its engine).

    The coroutines return a ``recommendations`` payload, None for an unknown user; they raise
    ``NotReady`` before the first restore and ``TimeoutError`` when the engine stays busy."""

    def ready(self) -> bool: ...
    async def recommend_now(self, user_id: str, kind: str) -> dict[str, Any] | None: ...
    async def answer_now(self, user_id: str, text: str, k: int | None) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> Reply:
    body = ApiError.model_validate({"error": error, "detail": detail}).model_dump_json().encode()
    return Reply(status, body, headers or {})


UNAUTHORIZED = _error(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required",
                      {"WWW-Authenticate": 'Bearer realm="socrec"'})  # fmt: skip
NOT_READY = _error(503, "not_ready", "the worker is restoring its engine from its tables", {"Retry-After": "1"})
BUSY = _error(503, "busy", "the engine stayed busy past the request timeout", {"Retry-After": "1"})


def _ok(model: BaseModel) -> Reply:
    return Reply(200, model.model_dump_json().encode())


class ReadService:
    """Answers the API's routes from the cache of published lists and the engine."""

    def __init__(
        self,
        backend: Backend,
        latest: LatestLists,
        token: SecretStr,
        *,
        max_id_chars: int,
        max_text_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend, self.latest, self.token = backend, latest, token
        self.max_id_chars, self.max_text_bytes = max_id_chars, max_text_bytes
        self.clock = clock

    def _listing(self, payload: dict[str, Any], source: str) -> Reply:
        age = max(0.0, self.clock() - float(payload["ts"]))
        return _ok(RecommendationList.model_validate({**payload, "age_s": age, "source": source}))

    @staticmethod
    async def _engine_read(read: Awaitable[dict[str, Any] | None]) -> dict[str, Any] | Reply:
        """An engine read's payload, or the error reply: 404 unknown user, 503 not ready or busy."""
        try:
            payload = await read
        except NotReady:
            return NOT_READY
        except TimeoutError:
            return BUSY
        if payload is None:
            return _error(404, "not_found", "the engine knows no user with this id")
        return payload

    async def _computed(self, read: Awaitable[dict[str, Any] | None]) -> Reply:
        got = await self._engine_read(read)
        return got if isinstance(got, Reply) else self._listing(got, "computed")

    def _bad_user(self, user_id: str) -> Reply | None:
        if not user_id or len(user_id) > self.max_id_chars:
            return _error(400, "invalid", f"user_id must be 1 to {self.max_id_chars} characters")
        return None

    async def recommendations(self, authorization: str | None, user_id: str, kind: str | None) -> Reply:
        """``GET /v1/users/{user_id}/recommendations[?kind=items|users]``."""
        if not authorized(authorization, self.token):
            return UNAUTHORIZED
        kind = kind or "items"
        if kind not in ("items", "users"):
            return _error(400, "invalid", "kind must be 'items' or 'users'")
        bad = self._bad_user(user_id)
        if bad is not None:
            return bad
        if not self.backend.ready():
            return NOT_READY
        kept = self.latest.get(user_id, kind)
        if kept is not None:
            return self._listing(orjson.loads(kept[1]), kept[0])
        got = await self._engine_read(self.backend.recommend_now(user_id, kind))
        if isinstance(got, Reply):
            return got
        self.latest.keep(user_id, kind, orjson.dumps(got), "computed")
        return self._listing(got, "computed")

    async def query(self, authorization: str | None, body: bytes) -> Reply:
        """``POST /v1/queries`` with a ``QueryRequest`` body."""
        if not authorized(authorization, self.token):
            return UNAUTHORIZED
        try:
            req = QueryRequest.model_validate_json(body)
        except ValidationError as exc:
            return _error(400, "invalid", orjson.loads(exc.json(include_url=False, include_input=False)))
        bad = self._bad_user(req.user_id)
        if bad is not None:
            return bad
        if len(req.text.encode("utf-8", "surrogatepass")) > self.max_text_bytes:
            return _error(400, "invalid", f"text is longer than {self.max_text_bytes} bytes")
        if not self.backend.ready():
            return NOT_READY
        return await self._computed(self.backend.answer_now(req.user_id, req.text, req.k))

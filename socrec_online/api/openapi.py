"""The read API's OpenAPI 3.1 document, built from the pydantic models (``GET /v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

import socrec_online
from socrec_online.api.models import ApiError, QueryRequest, RecommendationList

RECOMMENDATIONS_PATH = "/v1/users/{user_id}/recommendations"
QUERIES_PATH = "/v1/queries"
OPENAPI_PATH = "/v1/openapi.json"
_REF = "#/components/schemas/{model}"


def _ref(model: type) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid request (kind, user id, body).",
        401: "Missing or wrong bearer token.",
        404: "The worker's engine knows no such user.",
        503: "Not ready (restoring the engine from the tables) or busy; retry after Retry-After seconds.",
    }
    return {str(c): _json(ApiError, text[c]) for c in codes}


def openapi_document() -> dict[str, Any]:
    """The document: paths, bearer security on the two data routes, schemas from the models."""
    _, defs = models_json_schema(
        [(RecommendationList, "serialization"), (QueryRequest, "validation"), (ApiError, "serialization")],
        ref_template=_REF,
    )
    user = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
    kind = {
        "name": "kind",
        "in": "query",
        "required": False,
        "description": "items (default) or users (who to follow).",
        "schema": {"type": "string", "enum": ["items", "users"], "default": "items"},
    }
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "socrec-online read API",
            "version": socrec_online.__version__,
            "description": "Served by each worker on SOCREC_WEB_HOST:SOCREC_WEB_PORT when SOCREC_API_TOKEN is set. "
            "Reads only: nothing is written to Kafka and no state changes. This document needs no token.",
        },
        "paths": {
            RECOMMENDATIONS_PATH: {
                "get": {
                    "summary": "A user's latest list: the one this worker last published, else one computed now.",
                    "operationId": "getRecommendations",
                    "security": secured,
                    "parameters": [user, kind],
                    "responses": {"200": _json(RecommendationList, "The list."), **_errors(400, 401, 404, 503)},
                }
            },
            QUERIES_PATH: {
                "post": {
                    "summary": "Answer a text query now (no event is written, no state changes).",
                    "operationId": "postQuery",
                    "security": secured,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(QueryRequest)}}},
                    "responses": {
                        "200": _json(RecommendationList, "The answer (kind query)."),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "summary": "This document (no token needed).",
                    "operationId": "getOpenApi",
                    "responses": {"200": {"description": "OpenAPI 3.1 JSON."}},
                }
            },
        },
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

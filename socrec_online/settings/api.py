"""Read API section: the worker's authenticated HTTP API (docs/api.md, socrec_online/api/)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class ApiSettings(BaseModel):
    """Where the read API listens, its bearer token, and the lists it keeps per worker."""

    web_host: str = Field(
        "127.0.0.1",
        description="Bind address of the worker's read API (docs/api.md; served only when api_token is set). "
        "Faust's own web server stays off: its views serve table state without authentication.",
    )
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="Port of the worker's read API (see web_host; 0 = a free one, written to the ready file).",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token of the worker's read API (GET /v1/users/{user_id}/recommendations, "
        "POST /v1/queries; a secret: never logged); unset = the API is off and nothing listens on web_port.",
    )
    api_cache_users: int = Field(
        100_000,
        ge=0,
        le=10_000_000,
        description="Users whose last published lists (items and who-to-follow) the read API keeps per worker, "
        "least recently published dropped first; a user not kept gets a list computed at request time. "
        "In users (0 = keep none).",
    )

"""Bearer-token check of the read API: constant-time, and the token never leaves its SecretStr."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from socrec_online.settings import Settings


def api_token(settings: Settings) -> SecretStr | None:
    """The token that turns the API on; None (API off) when unset or empty."""
    token = settings.api_token
    return token if token is not None and token.get_secret_value() else None


def authorized(header: str | None, token: SecretStr) -> bool:
    """Does an ``Authorization`` header carry ``Bearer <token>``? Compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(value.strip().encode(), token.get_secret_value().encode())

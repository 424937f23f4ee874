"""Faust's built-in web views serve table state without authentication: the worker serves none."""

from __future__ import annotations

import asyncio

import pytest

from socrec_online.settings import Settings


def test_the_worker_starts_no_faust_web_server() -> None:
    from streams.app import create_app

    app = create_app(Settings(web_port=0))
    assert app.conf.web_enabled is False
    assert list(app.boot_strategy.web_server()) == []  # nothing listens on web_port


def test_even_with_the_web_server_on_no_state_view_answers() -> None:
    """As `faust worker --with-web` would: the table, router, graph and stats views all answer 404."""
    from aiohttp.test_utils import TestClient, TestServer

    from streams.app import create_app
    from streams.tables import declare_tables

    settings = Settings(web_port=0, app_id="web-test")
    app = create_app(settings)
    declare_tables(app, settings, ("social", "items", "activity"))
    app.conf.web_enabled = True
    app.web.init_server()

    async def get_all() -> dict[str, int]:
        async with TestClient(TestServer(app.web.web_app)) as client:
            paths = ("/table/activity/", "/table/activity/ua/", "/router/", "/graph/", "/stats/")
            return {p: (await client.get(p)).status for p in paths}

    assert asyncio.run(get_all()) == dict.fromkeys(
        ("/table/activity/", "/table/activity/ua/", "/router/", "/graph/", "/stats/"), 404
    )


@pytest.fixture(autouse=True)
def _no_faust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_WEB_ENABLED", raising=False)

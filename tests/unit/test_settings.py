"""The settings object: documented, bounded, frozen, secret-safe."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from socrec_online.settings import Settings, settings_table


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"SOCREC_{name.upper()} has no description"
    table = settings_table()
    for name in Settings.model_fields:
        assert f"`SOCREC_{name.upper()}`" in table


def test_env_prefix_bounds_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCREC_TOP_K", "25")
    s = Settings()
    assert s.top_k == 25
    with pytest.raises(ValidationError):
        s.top_k = 3  # type: ignore[misc]
    monkeypatch.setenv("SOCREC_TOP_K", "0")
    with pytest.raises(ValidationError, match="top_k"):
        Settings()


def test_secrets_never_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCREC_KAFKA_SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("SOCREC_KAFKA_SSL_PASSWORD", "pem-secret")
    s = Settings()
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "hunter2-secret" not in text and "pem-secret" not in text
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == "hunter2-secret"


def test_servers_bind_loopback_by_default() -> None:
    s = Settings()
    assert s.metrics_host == "127.0.0.1" and s.web_host == "127.0.0.1"


def test_docs_settings_table_is_current() -> None:
    """docs/settings.md holds exactly what `socrec config --table` prints: a stale copy fails."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    text = path.read_text(encoding="utf-8")
    start = text.find("\n| env var |")  # the table's header row, at the start of a line
    assert start >= 0, "docs/settings.md has no settings table"
    assert text[start:].strip() == settings_table().strip(), (
        "docs/settings.md is stale: regenerate its table with `socrec config --table` (the command is in its header)"
    )


def test_readme_links_the_settings() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "(docs/settings.md)" in readme

"""The settings object: documented, bounded, frozen, secret-safe."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from socrec_online.settings import SECTIONS, Settings, settings_table


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
    start = text.find("\n## ")  # the first section heading: the generated part runs to the end
    assert start >= 0, "docs/settings.md has no settings sections"
    assert text[start:].strip() == settings_table().strip(), (
        "docs/settings.md is stale: regenerate its tables with `socrec config --table` (the command is in its header)"
    )


def test_every_setting_is_in_exactly_one_section() -> None:
    """A field declared in two sections would silently take the later one's default and text."""
    seen: dict[str, str] = {}
    for title, section in SECTIONS:
        for name in section.model_fields:
            assert name not in seen, f"{name} is in both {seen[name]!r} and {title!r}"
            seen[name] = title
    assert list(seen) == list(Settings.model_fields)  # `socrec config` lists them in section order too


def test_table_groups_settings_under_their_section_heading() -> None:
    """Each env var is listed under its own section's heading, and each heading appears once, in order."""
    under: dict[str, str] = {}
    headings: list[str] = []
    for line in settings_table().splitlines():
        if line.startswith("## "):
            headings.append(line[3:])
        elif line.startswith("| `SOCREC_"):
            under[line.split("`")[1]] = headings[-1]
    assert headings == [title for title, _ in SECTIONS]
    assert under["SOCREC_KAFKA_BOOTSTRAP"] == "Kafka"
    assert under["SOCREC_TEXT_DTYPE"] == "Text tower and model"
    assert under["SOCREC_BATCH_MAX_EVENTS"] == "Serving"
    assert under["SOCREC_FINETUNE_LR"] == "Trainer"
    assert under["SOCREC_API_TOKEN"] == "Read API"
    assert under["SOCREC_LOG_LEVEL"] == "Operations"
    assert set(under) == {f"SOCREC_{n.upper()}" for n in Settings.model_fields}


def test_descriptions_state_the_unit_not_run_figures() -> None:
    """A duration, size or count in a description carries its unit; a benchmark's figure never belongs there."""
    import re

    units = {"_s": "second", "_ms": "millisecond", "_bytes": "byte"}
    figures = re.compile(r"measured|\d(\.\d+)?x (faster|slower)|\d+(\.\d+)? ?ms a |events/s|cosine to float32")
    for name, field in Settings.model_fields.items():
        text = field.description or ""
        for suffix, unit in units.items():
            if name.endswith(suffix):
                assert unit in text, f"SOCREC_{name.upper()}: the description does not say it is in {unit}s"
        assert not figures.search(text), f"SOCREC_{name.upper()}: a run figure in the description: {text!r}"


def test_readme_links_the_settings() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "(docs/settings.md)" in readme

"""Fixtures shared by the unit tests of the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    """The tiny random text tower, with a cache (tests re-encode the same texts often)."""
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path), cache_size=10_000))

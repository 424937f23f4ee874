"""The text tower's in-memory cache: text vectors by the text's sha256, least recently used evicted.

A text the service has seen (an item re-published, a profile, a repeated query) is not run through
the transformer again. Each lookup is counted in ``socrec_text_cache_hits_total`` /
``socrec_text_cache_misses_total`` (distinct texts per call). The cache can be written to and read
back from a safetensors file, tagged with the model id that produced the vectors, so a file from
other weights is never used. Not thread-safe on its own: ``TextEncoder`` holds a lock around it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from socrec_online import metrics

log = logging.getLogger(__name__)

DIGEST = 32  # sha256 bytes per key


def text_key(text: str) -> bytes:
    """Cache key of a text: its sha256 (the text itself is never stored)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """Bounded LRU of ``(dim,)`` float32 cpu vectors; ``capacity`` 0 keeps nothing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def lookup(self, keys: Sequence[bytes]) -> tuple[dict[bytes, Tensor], list[bytes]]:
        """(vectors found, keys missing: distinct, in first-seen order); found ones become most recent."""
        found: dict[bytes, Tensor] = {}
        missing: dict[bytes, None] = {}
        for k in keys:
            if k in found or k in missing:
                continue
            hit = self._entries.get(k)
            if hit is None:
                missing[k] = None
            else:
                self._entries.move_to_end(k)
                found[k] = hit
        metrics.TEXT_CACHE_HITS.inc(len(found))
        metrics.TEXT_CACHE_MISSES.inc(len(missing))
        return found, list(missing)

    def remember(self, items: dict[bytes, Tensor]) -> None:
        """Add entries as most recent, then evict the least recent beyond ``capacity``."""
        if self.capacity <= 0:
            return
        for k, v in items.items():
            self._entries[k] = v
            self._entries.move_to_end(k)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def save(self, path: str | Path, model_id: str, dim: int) -> int:
        """Write every entry to a safetensors file (atomic: temp file, fsync, rename); returns the count."""
        from safetensors.torch import save_file

        items = list(self._entries.items())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = len(items)
        keys = (
            torch.frombuffer(bytearray(b"".join(k for k, _ in items)), dtype=torch.uint8).reshape(n, DIGEST)
            if n
            else torch.zeros(0, DIGEST, dtype=torch.uint8)
        )
        emb = torch.stack([v for _, v in items]) if n else torch.zeros(0, dim)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        save_file(
            {"keys": keys.contiguous(), "emb": emb.contiguous()},
            str(tmp),
            metadata={"model_id": model_id, "dim": str(emb.shape[1])},
        )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return n

    @staticmethod
    def read(path: str | Path, model_id: str) -> dict[bytes, Tensor]:
        """Entries a file holds for ``model_id``; a file from other weights, or a damaged one, gives
        nothing (it is only a cache: the texts get encoded again)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            return {}
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("model_id") != model_id:
                    return {}
                keys = f.get_tensor("keys")
                emb = f.get_tensor("emb").float()
        except (SafetensorError, OSError, ValueError) as e:
            log.warning("embedding cache %s unreadable, ignored: %s", path, e)
            return {}
        if keys.ndim != 2 or keys.shape[1] != DIGEST or emb.ndim != 2 or emb.shape[0] != keys.shape[0]:
            log.warning("embedding cache %s has unexpected shapes, ignored", path)
            return {}
        raw = keys.numpy().tobytes()
        return {raw[i * DIGEST : (i + 1) * DIGEST]: emb[i] for i in range(keys.shape[0])}

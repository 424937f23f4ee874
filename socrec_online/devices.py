"""Device helpers in one place: which torch device a setting names, whether it computes bfloat16
natively, the service's text-tower dtype and its intra-op thread count."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from socrec_online.settings import Settings

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` means cuda when present; asking for cuda without one is an error, not a fallback."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("SOCREC_DEVICE=cuda but torch sees no CUDA device")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Does this device compute bfloat16 natively (so bf16 is faster, not slower, than float32)?"""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def set_service_torch_threads(settings: Settings) -> int:
    """Half the cores for torch by default: the event loop, the producer and often the broker share
    them, and OpenMP threads spinning against those busy threads slow encoding down."""
    import torch

    n = settings.torch_threads or max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(n)
    log.info("torch intra-op threads: %d", n)
    return n


def service_text_dtype(settings: Settings) -> Literal["float32", "bfloat16"]:
    """The engine's text-tower dtype: the service's dominant cost is encoding new texts, so
    bfloat16 where the CPU or GPU computes it natively, else the configured dtype."""
    if settings.text_quantize and resolve_device(settings.device).type == "cpu":
        return "float32"  # int8 quantization starts from float32 weights (ignored on cuda)
    if settings.service_text_dtype != "auto":
        return settings.service_text_dtype
    if settings.text_dtype == "float32" and native_bf16(resolve_device(settings.device)):
        return "bfloat16"
    return settings.text_dtype

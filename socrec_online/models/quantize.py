"""int8 dynamic quantization of the text tower (CPU only), and when the settings turn it on."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from socrec_online.settings import Settings

log = logging.getLogger(__name__)


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


def quantize_int8(model: nn.Module) -> nn.Module:
    """int8 dynamic quantization (per-channel weights) of the Linear layers, except FFN down-projections.

    Why the exception: a down-projection (in_features >= 2 * out_features, e.g. BERT's
    ``output.dense`` 1536 -> 384, an LLM's ``down_proj``) reads post-GELU activations with large
    outliers; quantizing it costs most of the int8 error for a small share of the FLOPs.
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

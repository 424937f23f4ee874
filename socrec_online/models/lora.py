"""LoRA adapters on the text tower: what the online trainer fine-tunes and a snapshot ships.

The adapters are injected into the encoder's transformer in place (peft), so the encoder keeps its
class and forward and ``encode``/``encode_train`` work unchanged. LoRA-B starts at zero: outputs are
unchanged until trained. A snapshot stores only the LoRA tensors (``lora_state_dict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from socrec_online.models.text import TextEncoder


def add_lora(
    encoder: TextEncoder,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: list[str] | str | None = None,
) -> float:
    """Inject LoRA adapters into the transformer in place; freezes everything else.

    Returns the trainable fraction of parameters. ``target_modules`` None: peft's defaults for the
    model type, else every linear layer.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if encoder.cfg.quantize:
        raise ValueError("LoRA needs float weights; build the encoder with quantize=False")
    if encoder.has_lora:
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
    encoder.has_lora = True
    encoder.weights_changed()
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
    encoder.weights_changed()

"""The text tower's LoRA adapters inside a snapshot directory: the file's name, writing and verified reading.

A snapshot fine-tuned with LoRA on the text tower (``online/learner.py``) ships its adapters as an
extra file checked against the manifest like every other; the serving side (``service/fused.py``)
and the next fine-tune read them back here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socrec_online import snapshot

LORA_FILE = "text_lora.safetensors"


def lora_bytes(tensors: Mapping[str, Any]) -> bytes:
    """The adapters as safetensors bytes (what goes into the snapshot as ``LORA_FILE``)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()})


def read_lora(path: str | Path) -> dict[str, Any] | None:
    """The snapshot's text-tower LoRA tensors (verified against the manifest), or None."""
    from safetensors.torch import load

    try:
        raw = snapshot.read_extra(Path(path), LORA_FILE)
    except snapshot.SnapshotError as e:
        if e.reason == snapshot.SnapshotErrorReason.MISSING and LORA_FILE in e.detail:
            return None
        raise
    return dict(load(raw))

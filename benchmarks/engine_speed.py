"""How fast is the engine alone (no Kafka)? ``python -m benchmarks.engine_speed --help``.

Replays the synthetic dataset through ``learn_many`` + ``recommend_many`` in micro-batches, as
the stream agent does, after a warm-up that builds realistic state, and reports per-batch
wall and CPU milliseconds with text encoding timed separately (the text tower has its own
bench). CPU time is reported because wall time on a shared machine mostly measures neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def measure_engine(
    batch: int = 256,
    batches: int = 40,
    warmup_events: int = 10_000,
    encoder: str = "tiny",
    threads: int = 1,
    who_to_follow: str = "changed",
    device: str = "cpu",
    text_cache: str | None = None,
) -> dict[str, Any]:
    from socrec_online.data import load_dataset
    from socrec_online.models.text import TextEncoder, TextEncoderConfig, make_tiny_bert
    from socrec_online.service.engine import Engine
    from socrec_online.service.heap import freeze_long_lived
    from socrec_online.settings import Settings

    torch.set_num_threads(threads)
    if encoder == "tiny":
        cfg = TextEncoderConfig(model_path=str(make_tiny_bert(tempfile.mkdtemp())), device=device)
    else:
        cfg = TextEncoderConfig(device=device)
    enc = TextEncoder(cfg)
    if text_cache and os.path.exists(text_cache):
        enc.load_cache(text_cache)  # a warm cache: measure the engine, not the text tower
    encode = enc.encode
    spent = [0.0]

    def timed_encode(texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        t0 = time.perf_counter()
        out = encode(texts)
        spent[0] += time.perf_counter() - t0
        return out

    enc.encode = timed_encode  # type: ignore[method-assign]
    ds = load_dataset("synthetic")
    events = list(ds.events())
    overrides: dict[str, Any] = {"device": device}
    eng = Engine(Settings(**overrides), enc)
    for i in range(0, warmup_events, 1000):
        eng.learn_many(events[i : i + 1000])
    freeze_long_lived()  # what Engine.restore does at a worker's start
    spent[0] = 0.0
    wall_l, wall_r, cpu_l, cpu_r, touched = [], [], [], [], []
    end = min(len(events), warmup_events + batch * batches)
    for i in range(warmup_events, end, batch):
        t0, c0 = time.perf_counter(), time.process_time()
        r = eng.learn_many(events[i : i + batch])
        t1, c1 = time.perf_counter(), time.process_time()
        wtf: bool | list[str] = (
            r.who_to_follow_users if who_to_follow == "changed" else who_to_follow == "all"
        )
        eng.recommend_many(r.touched_users, source_event_ids=r.source_event_ids, who_to_follow=wtf)
        t2, c2 = time.perf_counter(), time.process_time()
        wall_l.append(t1 - t0)
        wall_r.append(t2 - t1)
        cpu_l.append(c1 - c0)
        cpu_r.append(c2 - c1)
        touched.append(len(r.touched_users))
    n = len(wall_l)
    if text_cache and not os.path.exists(text_cache):
        for i in range(end, len(events), 1000):  # encode the rest too, so the next run is fully cached
            eng.learn_many(events[i : i + 1000])
        enc.save_cache(text_cache)

    def ms(xs: list[float]) -> float:
        return round(float(np.mean(xs)) * 1e3, 2)

    return {
        "batches": n,
        "batch_events": batch,
        "touched_users_per_batch": round(float(np.mean(touched)), 1),
        "learn_wall_ms": ms(wall_l),
        "recommend_wall_ms": ms(wall_r),
        "learn_cpu_ms": ms(cpu_l),
        "recommend_cpu_ms": ms(cpu_r),
        "encode_wall_ms": round(spent[0] / max(n, 1) * 1e3, 2),
        "total_wall_ms_excluding_encode": round(ms(wall_l) + ms(wall_r) - spent[0] / max(n, 1) * 1e3, 2),
        "p95_batch_wall_ms": round(float(np.percentile(np.add(wall_l, wall_r), 95)) * 1e3, 2),
        "engine_events_per_s_wall": round(n * batch / max(sum(wall_l) + sum(wall_r), 1e-9)),
        "encoder": encoder,
        "threads": threads,
        "device": device,
        "who_to_follow": who_to_follow,
        "state": eng.stats(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--warmup-events", type=int, default=10_000)
    ap.add_argument("--encoder", choices=["tiny", "minilm"], default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--who-to-follow", choices=["changed", "all", "none"], default="changed")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--text-cache", default=None, help="encoder cache (safetensors): loaded if present, else written"
    )
    a = ap.parse_args()
    print(
        json.dumps(
            measure_engine(
                a.batch,
                a.batches,
                a.warmup_events,
                a.encoder,
                a.threads,
                a.who_to_follow,
                a.device,
                a.text_cache,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

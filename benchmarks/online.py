"""``socrec bench online``: does fine-tuning on the stream help, and does the reservoir prevent forgetting?

Prequential (test-then-train) over a time-ordered stream, with the real serving engine and the
real online learner in one process (no Kafka: the latency half lives in
``benchmarks/online_latency.py``). Per micro-batch: every click/like is first checked against the
last top-k list the engine published for that user (a hit if the item is in it), then the batch
is learned by the engine (which publishes fresh lists for the users it touched) and by the
learner; when the trigger fires the learner fine-tunes, and a published snapshot is hot-swapped
into the engine with ``Engine.load_snapshot``, as a worker does on ``model-updates``.

Arms (same stream, same seeds): ``finetuned`` (periodic fine-tunes, reservoir on),
``frozen`` (the first published snapshot, never updated), ``no_reservoir`` (periodic
fine-tunes on the recent window only). Metrics count only clicks after the arm's first
snapshot (before it, every arm serves the same zero-shot model):
``hit_ratio`` = hits / clicks (click-averaged), ``recall@10`` = the per-user mean of that
share (user-averaged, so heavy users do not dominate).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socrec_online.events import Click, Event, Like

log = logging.getLogger(__name__)


@dataclass
class OnlineBenchConfig:
    dataset: str = "synthetic"
    data_dir: str | None = None
    events: int = 6000  # interactions streamed after the catalogue/graph bootstrap
    batch: int = 100  # micro-batch (events) between prequential checks
    finetune_every: int = 1000  # events between fine-tunes
    steps: int = 30  # optimizer steps per fine-tune
    lora_r: int = 0  # LoRA rank on the text tower (0 = frozen text tower; see docs/quality.md for the cost)
    recent_size: int = 2000  # the replay window (small relative to the stream, so forgetting can show)
    reservoir_size: int = 4000
    gate_tolerance: float = 0.005
    arms: tuple[str, ...] = ("finetuned", "frozen", "no_reservoir")
    seed: int = 0
    device: str = "cpu"
    text_model_path: str | None = None  # None: all-MiniLM-L6-v2
    progress: bool = True


def _stream(cfg: OnlineBenchConfig) -> tuple[list[Event], list[Event]]:
    from socrec_online.data import load_dataset
    from socrec_online.events import Comment

    kw: dict[str, Any] = {"seed": cfg.seed} if cfg.dataset == "synthetic" else {}
    if cfg.data_dir:
        kw["data_dir"] = cfg.data_dir
    ds = load_dataset(cfg.dataset, **kw)
    head: list[Event] = []
    rest: list[Event] = []
    for ev in ds.events():
        if isinstance(ev, Click | Like | Comment):
            rest.append(ev)
            if len(rest) >= cfg.events:
                break
        elif not rest:
            head.append(ev)
    # live clock: the engine drops items older than item_ttl_s from candidates, so a dataset from
    # years ago is replayed as if it happened now, keeping its spacing compressed to 1 ms/event
    t0 = time.time() - len(head) * 1e-3 - len(rest) * 1e-3
    head = [dataclasses.replace(e, ts=t0 + k * 1e-3) for k, e in enumerate(head)]
    t1 = t0 + len(head) * 1e-3
    rest = [dataclasses.replace(e, ts=t1 + k * 1e-3) for k, e in enumerate(rest)]
    return head, rest


def _settings(cfg: OnlineBenchConfig, snap_dir: Path) -> Any:
    from socrec_online.settings import Settings

    kw: dict[str, Any] = {
        "snapshot_dir": snap_dir,
        "device": cfg.device,
        "seed": cfg.seed,
        "lora_r": cfg.lora_r,
        "finetune_steps": cfg.steps,
        "finetune_every_events": cfg.finetune_every,
        "finetune_min_pairs": 100,
        "buffer_recent_size": cfg.recent_size,
        "buffer_reservoir_size": cfg.reservoir_size,
        "gate_tolerance": cfg.gate_tolerance,
        "user_ttl_s": 0.0,  # a dataset replay evicts nothing (benchmarks/engine_eval.py NO_RETENTION)
        "item_retention_s": 0.0,
    }
    if cfg.text_model_path:
        kw["text_model_path"] = cfg.text_model_path
    return Settings(**kw)


def run_arm(
    arm: str, cfg: OnlineBenchConfig, head: list[Event], rest: list[Event], encoder: Any, workdir: Path,
    make_encoder: Callable[[], Any],
) -> dict[str, Any]:
    """One prequential pass with the engine and learner of ``arm``."""
    from socrec_online.online import OnlineConfig, OnlineLearner
    from socrec_online.service.engine import Engine

    snap = workdir / arm
    settings = _settings(cfg, snap)
    if arm == "no_reservoir":
        settings = settings.model_copy(update={"buffer_reservoir_size": 0})
    engine = Engine(settings, encoder)
    engine.restore({})
    ocfg = OnlineConfig.from_settings(settings)
    ocfg.min_events = 1
    learner_enc = make_encoder() if cfg.lora_r > 0 else encoder  # LoRA mutates its encoder: not the engine's
    learner = OnlineLearner(ocfg, snap, encoder=learner_enc)
    last: dict[str, frozenset[str]] = {}
    hits = clicks = 0
    per_user: dict[str, list[int]] = {}
    published = rejected = 0
    first_at: int | None = None
    ft_seconds: list[float] = []
    frozen_done = False

    def serve(events: list[Event]) -> None:
        res = engine.learn_many(events)
        if res.touched_users:
            for p in engine.recommend_many(res.touched_users, who_to_follow=False):
                if p.get("kind") == "items":
                    last[p["user_id"]] = frozenset(i["id"] for i in p["items"])

    serve(head)
    learner.learn_many(head)
    learner.trigger.reset()
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rest), desc=f"online {arm}", unit="ev")
    for s in range(0, len(rest), cfg.batch):
        batch = rest[s : s + cfg.batch]
        if first_at is not None:  # test ...
            for ev in batch:
                if isinstance(ev, Click | Like) and ev.user_id in last:
                    hit = int(ev.item_id in last[ev.user_id])
                    hits += hit
                    clicks += 1
                    per_user.setdefault(ev.user_id, []).append(hit)
        serve(batch)  # ... then train
        learner.learn_many(batch)
        if bar is not None:
            bar.update(len(batch))
        if frozen_done or learner.trigger.since_events < cfg.finetune_every:
            continue
        out = learner.finetune("events")
        ft_seconds.append(out.seconds)
        if out.outcome == "published" and out.path:
            published += 1
            engine.load_snapshot(out.path)
            if first_at is None:
                first_at = s + len(batch)
            frozen_done = arm == "frozen"
        elif out.outcome == "rejected":
            rejected += 1
    if bar is not None:
        bar.close()
    recall = sum(sum(v) / len(v) for v in per_user.values()) / max(len(per_user), 1)
    return {
        "hit_ratio": round(hits / clicks, 4) if clicks else None,
        "recall@10": round(recall, 4) if per_user else None,
        "clicks_scored": clicks,
        "users_scored": len(per_user),
        "first_snapshot_at_event": first_at,
        "snapshots_published": published,
        "snapshots_rejected": rejected,
        "finetune_seconds": [round(x, 2) for x in ft_seconds],
        "final_version": engine.model_version,
    }


def run_online_bench(cfg: OnlineBenchConfig, workdir: Path | None = None) -> dict[str, Any]:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig
    from socrec_online.models.train import seed_everything

    head, rest = _stream(cfg)
    tmp = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="socrec-bench-online-"))

    def make_encoder() -> Any:
        return TextEncoder(TextEncoderConfig(model_path=cfg.text_model_path, device=cfg.device))

    encoder = make_encoder()
    result: dict[str, Any] = {
        "dataset": cfg.dataset,
        "events": len(rest),
        "bootstrap_events": len(head),
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress",)},
    }
    t0 = time.perf_counter()
    for arm in cfg.arms:
        seed_everything(cfg.seed)
        result[arm] = run_arm(arm, cfg, head, rest, encoder, tmp, make_encoder)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    ft = result.get("finetuned", {})
    result["snapshots_published"] = ft.get("snapshots_published", 0)
    result["snapshots_rejected"] = ft.get("snapshots_rejected", 0)
    return result


def print_table(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"socrec bench online: {r.get('dataset')} ({r.get('events')} events)")
    for c in ("arm", "hit_ratio", "recall@10", "clicks", "published", "rejected", "fine-tune s (mean)"):
        t.add_column(c)
    for arm in ("finetuned", "frozen", "no_reservoir"):
        a = r.get(arm)
        if not a:
            continue
        ft = a.get("finetune_seconds") or []
        t.add_row(arm, str(a.get("hit_ratio")), str(a.get("recall@10")), str(a.get("clicks_scored")),
                  str(a.get("snapshots_published")), str(a.get("snapshots_rejected")),
                  f"{sum(ft) / len(ft):.1f}" if ft else "-")
    Console().print(t)
    if r.get("p99_ms_idle") is not None:
        Console().print(
            f"worker p99 latency: idle {r['p99_ms_idle']} ms, during fine-tune {r.get('p99_ms_during_finetune')} ms"
            f" (ratio {r.get('p99_ratio')}); between fine-tunes {r.get('p99_ms_between_finetunes')} ms"
            f" (during/between {r.get('p99_ratio_interleaved')})"
        )


def write(r: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(r, indent=2))

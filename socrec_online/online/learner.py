"""The online learner: buffer + quality signal + trigger + fine-tune + gate + snapshot, as one object.

The trainer process (``streams/trainer.py``) feeds it events and the recommendations workers
published, asks ``due()`` and runs ``finetune()`` off its event loop. Everything here is plain
library code so the benchmark can drive the same object without Kafka.

Gate: the candidate is published only if ``candidate[recall@10] >= current[recall@10] -
gate_tolerance`` on the held-out newest slice of the buffer; both scores go into the snapshot
manifest. Before any snapshot exists, "current" is the zero-shot model's text term, and the
first snapshot is trained from the buffer (no ``socrec train`` bootstrap needed; one made by
``socrec train`` and promoted is picked up as the starting point instead).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from socrec_online import metrics as prom
from socrec_online.events import Click, Event, Like
from socrec_online.models.recommender import FusedRecommender, RecommenderConfig
from socrec_online.online.buffer import BufferConfig, ReplayBuffer
from socrec_online.online.drift import PrequentialMonitor, TriggerPolicy
from socrec_online.online.finetune import GATE_METRIC, FinetuneConfig, FinetuneResult, fine_tune
from socrec_online.snapshot_lora import LORA_FILE, lora_bytes, read_lora

log = logging.getLogger(__name__)

Outcome = Literal["published", "rejected", "failed", "skipped"]


@dataclass
class OnlineConfig:
    buffer: BufferConfig = field(default_factory=BufferConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    every_events: int = 5000
    every_s: float = 600.0
    min_events: int = 200
    drift_delta: float = 0.002
    gate_tolerance: float = 0.005
    min_train_pairs: int = 100
    keep_snapshots: int = 10
    dim: int = 64
    n_layers: int = 2

    @classmethod
    def from_settings(cls, s: Any) -> OnlineConfig:
        return cls(
            buffer=BufferConfig(
                recent_size=s.buffer_recent_size,
                reservoir_size=s.buffer_reservoir_size,
                holdout_fraction=s.holdout_fraction,
                sentiment_weighting=s.sentiment_weighting,
                seed=s.seed,
            ),
            finetune=FinetuneConfig(
                steps=s.finetune_steps,
                batch_pairs=s.finetune_batch_pairs,
                grad_accum=s.finetune_grad_accum,
                n_neg=s.finetune_negatives,
                lr=s.finetune_lr,
                lora_r=s.lora_r,
                lora_alpha=2 * s.lora_r,
                max_seconds=s.finetune_max_seconds,
                duty=s.finetune_duty,
                seed=s.seed,
                device=s.device,
            ),
            every_events=s.finetune_every_events,
            every_s=s.finetune_every_s,
            min_events=s.finetune_min_events,
            drift_delta=s.drift_delta,
            gate_tolerance=s.gate_tolerance,
            min_train_pairs=s.finetune_min_pairs,
            keep_snapshots=s.snapshot_keep,
            dim=s.embed_dim,
            n_layers=s.gnn_layers,
        )


@dataclass
class FinetuneOutcome:
    outcome: Outcome
    reason: str  # what triggered it (events, time, drift, manual)
    version: str | None = None
    path: str | None = None
    parent: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    detail: str = ""
    started: float = 0.0  # wall clock (epoch seconds) when the run started


class OnlineLearner:
    """One per trainer. ``learn_many``/``observe_recommendations`` from the consuming loop;
    ``finetune`` from a worker thread (the buffer is read under a lock, so consumption goes on)."""

    def __init__(
        self, cfg: OnlineConfig, snapshot_dir: str | Path | None, encoder: Any | None = None,
        text_dim: int | None = None, publish: bool = True,
    ) -> None:
        self.cfg = cfg
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.encoder = encoder
        self.text_dim = int(text_dim if text_dim is not None else (encoder.dim if encoder is not None else 384))
        self.publish = publish and self.snapshot_dir is not None
        self.buffer = ReplayBuffer(cfg.buffer)
        self.monitor = PrequentialMonitor(delta=cfg.drift_delta)
        self.trigger = TriggerPolicy(cfg.every_events, cfg.every_s, cfg.min_events)
        self._lock = threading.Lock()
        self._running = threading.Lock()
        self.stop_event = threading.Event()  # set on shutdown: a running fine-tune ends early, unpublished
        self.current: FusedRecommender | None = None
        self.current_users: list[str] = []
        self.current_items: list[str] = []
        self.current_version: str | None = None
        self.history: list[FinetuneOutcome] = []
        if cfg.finetune.lora_r > 0 and encoder is not None:
            from socrec_online.models.lora import add_lora

            add_lora(encoder, r=cfg.finetune.lora_r, alpha=cfg.finetune.lora_alpha)
        self._load_current()

    # --- the current model -------------------------------------------------------------------
    def _load_current(self) -> None:
        """Start from the promoted snapshot, if a usable one exists (else the first one is trained)."""
        from socrec_online import snapshot

        if self.snapshot_dir is None or not self.snapshot_dir.is_dir():
            return
        version = snapshot.current(self.snapshot_dir)
        if version is None:
            return
        try:
            self.adopt(self.snapshot_dir / version)
        except (snapshot.SnapshotError, ValueError, KeyError) as e:
            log.warning("current snapshot %s unusable (%s); the next fine-tune starts fresh", version, e)

    def adopt(self, path: str | Path) -> None:
        """Make a verified snapshot the starting point of the next fine-tune (after a rollback too)."""
        from socrec_online.models.recommender import load_recommender

        model, users, items, manifest = load_recommender(path)
        if int(model.cfg.text_dim) != self.text_dim:
            raise ValueError(f"snapshot has {model.cfg.text_dim}-d text, the text tower {self.text_dim}")
        lora = read_lora(path)
        if self.encoder is not None and self.cfg.finetune.lora_r > 0:
            from socrec_online.models.lora import load_lora_state_dict

            if lora is not None:
                load_lora_state_dict(self.encoder, lora)
        self.current, self.current_users, self.current_items = model, users, items
        self.current_version = str(manifest["version"])

    # --- the stream --------------------------------------------------------------------------
    def learn_many(self, events: Iterable[Event]) -> int:
        """Prequential: each click is scored against recent recommendations, then learned."""
        evs = list(events)
        for ev in evs:
            if isinstance(ev, Click | Like) and not getattr(ev, "undo", False):
                self.monitor.observe_click(ev.user_id, ev.item_id)
        with self._lock:
            n = self.buffer.learn_many(evs)
        self.trigger.note(n)
        if self.monitor.take_drift():
            self.trigger.note_drift()
        prom.ONLINE_HIT_RATIO.set(self.monitor.hit_ratio)
        return n

    def observe_recommendations(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        for p in payloads:
            if p.get("kind", "items") == "items" and p.get("user_id"):
                self.monitor.observe_recommendation(str(p["user_id"]), [str(i.get("id")) for i in p.get("items", [])])

    def due(self, now: float | None = None) -> str | None:
        if self._running.locked():
            return None
        return self.trigger.due(now)

    # --- fine-tune ---------------------------------------------------------------------------
    def finetune(self, reason: str = "manual") -> FinetuneOutcome:
        """Train, gate, and (if it passes) save + promote a snapshot. Never raises: a failure is
        an outcome (``failed``), counted, and the serving model is untouched."""
        with self._running:
            t0 = time.perf_counter()
            started = time.time()
            self.trigger.reset()
            try:
                out = self._finetune(reason)
            except Exception as e:  # a failed run must not kill the trainer: it is counted and retried later
                log.exception("fine-tune failed")
                out = FinetuneOutcome("failed", reason, detail=f"{type(e).__name__}: {e}")
            out.seconds = time.perf_counter() - t0
            out.started = started
            if out.outcome != "skipped":
                prom.FINETUNE_RUNS.labels(outcome=out.outcome).inc()
                prom.FINETUNE_SECONDS.observe(out.seconds)
            if out.outcome == "published":
                prom.SNAPSHOTS_PUBLISHED.inc()
                prom.SNAPSHOT_LAST_SUCCESS.set(time.time())
            elif out.outcome == "rejected":
                prom.SNAPSHOT_REJECTED.labels(reason="gate").inc()
            self.history.append(out)
            return out

    def _follow_current(self) -> None:
        """An operator's promote/rollback moved CURRENT: fine-tune from what is serving now."""
        from socrec_online import snapshot

        if self.snapshot_dir is None:
            return
        cur = snapshot.current(self.snapshot_dir)
        if cur is not None and cur != self.current_version:
            try:
                self.adopt(self.snapshot_dir / cur)
                log.info("CURRENT moved to %s: fine-tuning from it", cur)
            except (snapshot.SnapshotError, ValueError, KeyError) as e:
                log.warning("CURRENT %s unusable (%s); continuing from %s", cur, e, self.current_version)

    def _finetune(self, reason: str) -> FinetuneOutcome:
        self._follow_current()
        with self._lock:
            data = self.buffer.training_data(self.current_users, self.current_items)
        if data.train_u.size < self.cfg.min_train_pairs or data.hold_u.size == 0:
            return FinetuneOutcome(
                "skipped", reason, detail=f"{data.train_u.size} training / {data.hold_u.size} held-out pairs"
            )
        model_cfg = self._model_cfg()
        lora_before = None
        if self.encoder is not None and self.cfg.finetune.lora_r > 0:
            from socrec_online.models.lora import lora_state_dict

            lora_before = lora_state_dict(self.encoder)
        res = fine_tune(
            self.current, data, model_cfg, self.cfg.finetune, encoder=self.encoder,
            n_known=(len(self.current_users), len(self.current_items)),
            should_stop=self.stop_event.is_set,
        )
        if self.stop_event.is_set():
            return FinetuneOutcome("skipped", reason, detail="stopped before it finished")
        cur, cand = res.current[GATE_METRIC], res.candidate[GATE_METRIC]
        metrics = gate_metrics(res, self.cfg.gate_tolerance, self.current_version)
        if cand < cur - self.cfg.gate_tolerance:
            if lora_before is not None and self.encoder is not None:
                from socrec_online.models.lora import load_lora_state_dict

                load_lora_state_dict(self.encoder, lora_before)  # the adapters serve the current model
            return FinetuneOutcome(
                "rejected", reason, parent=self.current_version, metrics=metrics,
                detail=f"candidate {GATE_METRIC} {cand:.4f} < current {cur:.4f} - {self.cfg.gate_tolerance}",
            )
        version, path = None, None
        if self.publish:
            assert self.snapshot_dir is not None
            version, path = self._save(res, data.user_ids, data.item_ids, metrics, data.window, model_cfg)
        self.current = res.model
        self.current_users, self.current_items = list(data.user_ids), list(data.item_ids)
        parent = self.current_version
        self.current_version = version or self.current_version
        return FinetuneOutcome("published", reason, version, path, parent, metrics)

    def _model_cfg(self) -> RecommenderConfig:
        if self.current is not None:
            return dataclasses.replace(self.current.cfg)
        return RecommenderConfig(
            n_users=0, n_items=0, kind="fused", dim=self.cfg.dim, text_dim=self.text_dim, n_layers=self.cfg.n_layers
        )

    def _save(
        self, res: FinetuneResult, users: Sequence[str], items: Sequence[str], metrics: dict[str, Any],
        window: dict[str, float], model_cfg: RecommenderConfig,
    ) -> tuple[str, str]:
        from socrec_online import snapshot
        from socrec_online.models.recommender import save_recommender

        assert self.snapshot_dir is not None
        extra_files: dict[str, bytes] = {}
        extra_config: dict[str, Any] = {"online": {"amp": res.amp, "steps": res.steps}}
        if res.lora is not None:
            extra_files[LORA_FILE] = lora_bytes(res.lora)
            extra_config["text_lora"] = {
                "r": self.cfg.finetune.lora_r,
                "alpha": self.cfg.finetune.lora_alpha,
                "base_model": getattr(self.encoder, "base_id", None),
            }
        info = save_recommender(
            self.snapshot_dir, res.model, users, items, metrics, data_window=window,
            parent=self.current_version, extra_config=extra_config, extra_files=extra_files,
        )
        snapshot.promote(self.snapshot_dir, info.version)
        try:
            snapshot.prune(self.snapshot_dir, self.cfg.keep_snapshots)
        except OSError as e:  # disk housekeeping must never fail a good publish
            log.warning("pruning old snapshots failed: %s", e)
        return info.version, str(info.path)


def gate_metrics(res: FinetuneResult, tolerance: float, parent: str | None) -> dict[str, Any]:
    """What the manifest records: both scores on the same held-out slice, and how they were made."""
    m: dict[str, Any] = {
        "gate_metric": GATE_METRIC,
        "gate_tolerance": tolerance,
        "current_baseline": parent or "zero-shot-text",
        "current": dict(res.current),
        "candidate": dict(res.candidate),
        "loss_first": res.losses[0] if res.losses else None,
        "loss_last": res.losses[-1] if res.losses else None,
        "steps": res.steps,
        "train_seconds": res.seconds,
    }
    for k in (GATE_METRIC, "hr@10", "ndcg@10"):
        m[f"candidate_{k}"] = res.candidate.get(k)
        m[f"current_{k}"] = res.current.get(k)
    return m

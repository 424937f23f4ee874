"""The engine's serving-model slot: which model scores (None = zero-shot), and swapping it safely.

A swap (``swap``) takes effect at the next engine call, so an in-flight batch finishes on the old
model; a snapshot load (``load_snapshot``) verifies and attaches at once, between batches. A model
that fails to attach or load never takes serving down: the old one keeps serving, and it is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from socrec_online import metrics
from socrec_online.service.batch import GraphChanges
from socrec_online.service.protocols import GraphView, ServingModel, TextEncoderLike
from socrec_online.settings import Settings
from socrec_online.types import ZERO_SHOT_VERSION

log = logging.getLogger(__name__)


class ModelSlot:
    def __init__(self, model: ServingModel | None = None, version: str = ZERO_SHOT_VERSION) -> None:
        self.model: ServingModel | None = None
        self.version = ZERO_SHOT_VERSION
        # a given model attaches on the first call, i.e. after restore() has rebuilt the state
        self._pending: tuple[ServingModel | None, str] | None = (model, version) if model is not None else None

    @property
    def next_version(self) -> str:
        """The version served from the next engine call on (a pending swap's, else the current)."""
        return self._pending[1] if self._pending is not None else self.version

    @property
    def learns_batches(self) -> bool:
        return self.model is not None and hasattr(self.model, "learn_batch")

    def swap(self, model: ServingModel | None, version: str) -> None:
        """Serve ``model`` (None = zero-shot) from the next call on."""
        self._pending = (model, version if model is not None else ZERO_SHOT_VERSION)

    def apply_pending(self, view: GraphView) -> None:
        """Attach and serve the pending model, if any (called at the start of every engine call)."""
        if self._pending is None:
            return
        model, version = self._pending
        self._pending = None
        try:
            if model is not None:
                if not callable(getattr(model, "score_users_items", None)):
                    raise TypeError(
                        f"{type(model).__name__} has no score_users_items(engine, rows, cand, now)"
                    )
                prepare = getattr(model, "attach", None)
                if prepare is not None:
                    prepare(view)
        except Exception:  # a bad snapshot must not take serving down: keep the old model
            log.exception("model %s failed to attach; still serving %s", version, self.version)
            metrics.MODEL_SWAPS.labels(outcome="failed").inc()
            return
        self.model, self.version = model, version
        metrics.MODEL_SWAPS.labels(outcome="ok").inc()
        metrics.set_model_version(version)

    def attach(self, view: GraphView) -> None:
        """Rebuild the model's own graph (derived state too) from the engine's, after a restore."""
        attach = getattr(self.model, "attach", None)
        if attach is not None:
            attach(view)

    def learn_batch(self, view: GraphView, changes: GraphChanges) -> None:
        if self.model is not None:
            self.model.learn_batch(view, changes)  # type: ignore[attr-defined]

    def load_snapshot(self, view: GraphView, encoder: TextEncoderLike, path: str) -> str:
        """Verify, load and attach the snapshot at ``path`` now, and serve it; returns its version.

        A refused snapshot (truncated, bit-flipped, unreadable, or not servable by this engine) raises
        ``SnapshotError``, is counted in ``socrec_snapshot_rejected_total{reason}``, and the old model
        keeps serving.
        """
        from socrec_online.service.fused import FusedScorer
        from socrec_online.snapshot import SnapshotError, SnapshotErrorReason

        p = Path(path)
        if p.name == self.version and self._pending is None:
            return self.version  # announced twice (a replayed model-updates record)
        try:
            scorer = FusedScorer.load(p, encoder=encoder)
            scorer.attach(view)
        except SnapshotError as e:
            metrics.SNAPSHOT_REJECTED.labels(reason=e.reason.value).inc()
            metrics.MODEL_SWAPS.labels(outcome="refused").inc()
            log.warning("snapshot refused, still serving %s: %s", self.version, e)
            raise
        except (ValueError, KeyError, RuntimeError, OSError) as e:
            metrics.SNAPSHOT_REJECTED.labels(reason="incompatible").inc()
            metrics.MODEL_SWAPS.labels(outcome="refused").inc()
            log.warning("snapshot %s not servable, still serving %s: %s", p, self.version, e)
            raise SnapshotError(SnapshotErrorReason.MALFORMED, p, f"not servable: {e}") from None
        self._pending = None  # an older swap() must not override this one
        self.model, self.version = scorer, p.name
        metrics.MODEL_SWAPS.labels(outcome="ok").inc()
        metrics.set_model_version(p.name)
        metrics.SNAPSHOT_LAST_SUCCESS.set(time.time())
        return p.name


def load_current_model(settings: Settings, encoder: TextEncoderLike) -> tuple[ServingModel | None, str]:
    """The promoted snapshot's serving model, or (None, zero-shot) when none is usable."""
    try:
        from socrec_online import snapshot
    except ImportError:
        return None, ZERO_SHOT_VERSION
    root = Path(settings.snapshot_dir)
    try:
        version = snapshot.current(root) if root.exists() else None
    except Exception:
        log.exception("cannot read the current snapshot pointer in %s; serving zero-shot", root)
        return None, ZERO_SHOT_VERSION
    if version is None:
        return None, ZERO_SHOT_VERSION
    loader = _fused_loader()
    if loader is None:
        log.warning("snapshot %s present but no fused serving API is installed; serving zero-shot", version)
        return None, ZERO_SHOT_VERSION
    try:
        return loader(root / version, settings, encoder), version
    except Exception:
        log.exception("snapshot %s could not be loaded; serving zero-shot", version)
        metrics.SNAPSHOT_REJECTED.labels(reason="load_failed").inc()
        return None, ZERO_SHOT_VERSION


def _fused_loader() -> Callable[..., Any] | None:
    try:
        from socrec_online.service.fused import FusedScorer
    except ImportError:
        return None

    def load(path: Path, settings: Settings, encoder: TextEncoderLike) -> Any:
        return FusedScorer.load(path, encoder=encoder)

    return load

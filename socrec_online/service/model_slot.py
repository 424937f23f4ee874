"""The engine's serving-model slot: which model scores (None = zero-shot), and swapping it safely.

A swap (``swap``) takes effect at the next engine call, so an in-flight batch finishes on the old
model. A hot swap of a snapshot (``stage_snapshot``) copies the graph, then loads, verifies and builds
the new scorer on a thread while the old model keeps serving; the first engine call after the build
replays the batches applied meanwhile and swaps the reference. A model that fails to attach or load
never takes serving down: the old one keeps serving, and it is counted.
"""

from __future__ import annotations

import logging
import threading
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
        self._build: _Build | None = None  # a hot swap being built off the engine's thread
        self._outcomes: dict[str, Exception | None] = {}  # finished swaps: version -> refusal (None = served)

    @property
    def next_version(self) -> str:
        """The version served from the next engine call on (a pending swap's, else the current)."""
        return self._pending[1] if self._pending is not None else self.version

    def swap(self, model: ServingModel | None, version: str) -> None:
        """Serve ``model`` (None = zero-shot) from the next call on."""
        self._pending = (model, version if model is not None else ZERO_SHOT_VERSION)

    def apply_pending(self, view: GraphView) -> None:
        """Serve a finished hot-swap build, or attach and serve the pending model, if any
        (called at the start of every engine call)."""
        if self._build is not None and not self._build.thread.is_alive():
            self._finish(view)
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
        if self._build is not None:
            self._build.stale = True  # its copy predates the restore: rebuilt at finish

    @property
    def learns_batches(self) -> bool:
        """Whether batches must record their graph changes: a model learns them, or a build is on."""
        return self._build is not None or (self.model is not None and hasattr(self.model, "learn_batch"))

    def learn_batch(self, view: GraphView, changes: GraphChanges) -> None:
        if self.model is not None and hasattr(self.model, "learn_batch"):
            self.model.learn_batch(view, changes)
        if self._build is not None:
            self._build.batches.append(changes)

    # ------------------------------------------------------------------ hot swap
    def load_snapshot(self, view: GraphView, encoder: TextEncoderLike, path: str) -> str:
        """Verify, load and attach the snapshot at ``path`` now, and serve it; returns its version.

        The blocking form of :meth:`stage_snapshot` + :meth:`swap_outcome` (tools, tests). A refused
        snapshot raises ``SnapshotError`` and the old model keeps serving.
        """
        version = self.stage_snapshot(view, encoder, path)
        if self._build is not None:
            self._build.thread.join()
        got = self.swap_outcome(view, version)
        assert got is not None
        return got

    def stage_snapshot(self, view: GraphView, encoder: TextEncoderLike, path: str) -> str:
        """Start a hot swap: copy the graph now, load and build the scorer on a thread; returns the version.

        The engine keeps serving the old model meanwhile and records each batch's graph changes; the
        first engine call after the build replays them into the new scorer and swaps the reference
        (:meth:`apply_pending`), so a swap costs serving a catch-up, not a build.
        """
        p = Path(path)
        if self._build is not None:  # one at a time: finish the one in flight first
            self._build.thread.join()
            self._finish(view)
        if p.name == self.version and self._pending is None:
            self._outcomes[p.name] = None  # announced twice (a replayed model-updates record)
            return p.name
        from socrec_online.service.fused import capture_graph

        self._build = _Build(p, capture_graph(view), encoder)
        self._outcomes.pop(p.name, None)
        self._build.thread.start()
        return p.name

    def swap_outcome(self, view: GraphView, version: str) -> str | None:
        """``version`` once it serves; None while its build runs; raises its ``SnapshotError`` if refused."""
        self.apply_pending(view)
        if self._build is not None and self._build.path.name == version:
            return None
        if version not in self._outcomes:
            raise KeyError(f"no hot swap of {version} was staged")
        error = self._outcomes[version]
        if error is not None:
            raise error
        return version

    def _finish(self, view: GraphView) -> None:
        """Serve the finished build's scorer (after replaying the batches applied meanwhile), or count its refusal."""
        from socrec_online.snapshot import SnapshotError, SnapshotErrorReason

        b = self._build
        assert b is not None and not b.thread.is_alive()
        self._build = None
        version = b.path.name
        error = b.error
        if error is not None and not isinstance(error, (SnapshotError, *REFUSALS)):
            raise error  # not the snapshot's fault: an infrastructure error crashes loudly, as in a batch
        if error is None and b.scorer is not None:
            try:
                if b.stale:
                    b.scorer.attach(view)
                else:
                    b.scorer.catch_up(view, b.batches)
            except REFUSALS as e:
                error = e
        if isinstance(error, SnapshotError):
            metrics.SNAPSHOT_REJECTED.labels(reason=error.reason.value).inc()
            log.warning("snapshot refused, still serving %s: %s", self.version, error)
        elif error is not None:
            metrics.SNAPSHOT_REJECTED.labels(reason="incompatible").inc()
            log.warning("snapshot %s not servable, still serving %s: %s", b.path, self.version, error)
            error = SnapshotError(SnapshotErrorReason.MALFORMED, b.path, f"not servable: {error}")
        self._remember(version, error)
        if error is not None:
            metrics.MODEL_SWAPS.labels(outcome="refused").inc()
            return
        self._pending = None  # an older swap() must not override this one
        self.model, self.version = b.scorer, version
        metrics.MODEL_SWAPS.labels(outcome="ok").inc()
        metrics.set_model_version(version)
        metrics.SNAPSHOT_LAST_SUCCESS.set(time.time())

    def _remember(self, version: str, error: Exception | None) -> None:
        self._outcomes[version] = error
        while len(self._outcomes) > OUTCOMES_KEPT:
            del self._outcomes[next(iter(self._outcomes))]


OUTCOMES_KEPT = 16
# what a snapshot that cannot serve raises (refused and counted; the old model keeps serving)
REFUSALS: tuple[type[Exception], ...] = (ValueError, KeyError, RuntimeError, OSError)


class _Build:
    """One staged snapshot: loaded and built on its own thread from a copy of the graph."""

    def __init__(self, path: Path, graph: Any, encoder: TextEncoderLike) -> None:
        self.path = path
        self.graph = graph
        self.encoder = encoder
        self.scorer: Any | None = None
        self.error: Exception | None = None
        self.batches: list[GraphChanges] = []  # applied by the engine while the build runs
        self.stale = False  # a restore replaced the graph the copy was taken from
        self.thread = threading.Thread(target=self._run, name=f"socrec-swap-{path.name}", daemon=True)

    def _run(self) -> None:
        from socrec_online.service.fused import FusedScorer

        try:
            scorer = FusedScorer.load(self.path, encoder=self.encoder)
            scorer.build(self.graph)
            self.scorer = scorer
        except Exception as e:  # noqa: BLE001 - handed to the engine call that finishes the swap
            self.error = e
        finally:
            self.graph = None  # the copy is large; the thread is done with it


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

"""The engine in a child process: the worker's Kafka client and the engine stop sharing one GIL.

Measured in the worker (py-spy, 2 cores): with the engine on a thread, the event loop waited for
the interpreter lock after every socket write while the engine held it, and the engine ran at
under half its stand-alone speed. A child process gives each its own interpreter; the worker
only decodes, writes tables and produces, the child learns and scores.

The boundary carries plain JSON (orjson), never pickle: validated events as their DESIGN.md dicts
(checked again by the child with the same field validator, ``decode_value``: the payload bound was
applied to the record as read, and a re-encoding may be longer), table state, payloads, and the
engine's metric changes (``metrics_bridge.export_engine_deltas``), which the worker adds into its own /metrics.

Failure policy: a refused snapshot comes back as :class:`SnapshotError` (the old model keeps
serving); any other error, and the child dying, is an infrastructure fault, so every later call raises
:class:`EngineProcessError` and the worker crashes and restarts (at-least-once replays the batch).
The child exits when the worker dies, even by SIGKILL: its blocking read sees end-of-file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, ClassVar

import orjson

from socrec_online import metrics
from socrec_online.events import Event, to_dict, topic_of
from socrec_online.service import metrics_bridge
from socrec_online.service.state import Position
from socrec_online.settings import Settings
from socrec_online.snapshot import SnapshotError, SnapshotErrorReason

log = logging.getLogger("socrec.engine")
START_TIMEOUT_S = 600.0  # model load on a cold, busy machine
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Encoded:
    """A ``recommendations`` payload already encoded, with what the worker needs to route and time it."""

    user_id: str
    kind: str
    source_event_id: str | None
    data: bytes

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Encoded:
        return cls(
            str(payload["user_id"]),
            str(payload.get("kind", "items")),
            payload.get("source_event_id"),
            orjson.dumps(payload),
        )


class EngineProcessError(RuntimeError):
    """The engine process failed or died; the worker must not go on without it."""


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the worker dies (belt and braces beside the pipe's EOF)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _serve(conn: Connection, settings_json: bytes) -> None:
    """Child main: build the engine, then answer [method, args] requests until EOF or "close"."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle; it closes us
    # SIGTERM too: a stop aimed at the process group (systemd, docker, WorkerProcess.stop) must let
    # the worker finish its batch and commit; the worker closes us (or we see EOF when it is gone).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from socrec_online.devices import set_service_torch_threads
    from socrec_online.service.decode import decode_value
    from socrec_online.service.engine import Engine

    try:
        # The worker's settings, not a re-read of the environment (they may come from flags).
        # Secrets arrive masked: the engine never talks to Kafka.
        settings = Settings.model_validate_json(settings_json)
        set_service_torch_threads(settings)
        engine = Engine.from_settings(settings)
        metrics.set_model_version(engine.model_version)
    except Exception as exc:  # noqa: BLE001 - reported to the worker, which fails loudly
        conn.send_bytes(orjson.dumps({"error": repr(exc), "tb": traceback.format_exc()}))
        return
    # a snapshot found at start attaches on the first call: it is the version being served
    starting = engine.next_model_version
    conn.send_bytes(orjson.dumps({"ok": {"model_version": starting, "stats": engine.stats()}}))

    def step(events: list[list[Any]], positions: list[Any] | None = None) -> dict[str, Any]:
        decoded = [decode_value(topic, value, settings) for topic, value in events]
        at = None if positions is None else [None if p is None else (p[0], p[1], tuple(p[2])) for p in positions]
        out = engine.step(decoded, positions=at)
        # Payloads leave as the bytes the worker publishes (after the reply, in one blob): the
        # worker neither parses nor re-encodes them.
        encoded = [orjson.dumps(p) for p in out["payloads"]]
        out["payloads"] = [
            [p["user_id"], p.get("kind", "items"), p.get("source_event_id"), len(e)]
            for p, e in zip(out["payloads"], encoded, strict=True)
        ]
        blob[:] = [b"".join(encoded)]
        return out

    blob: list[bytes] = []

    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the worker is gone
        method, args = orjson.loads(raw)
        if method == "close":
            conn.send_bytes(orjson.dumps({"ok": None}))
            return
        try:
            if method == "step":
                result: Any = step(*args)
            elif method.startswith("_"):
                raise AttributeError(f"engine method {method!r} is private")
            else:
                result = getattr(engine, method)(*args)
            reply = {"ok": result, "m": metrics_bridge.export_engine_deltas(), "v": engine.model_version}
            if blob:
                reply["blob"] = True
            conn.send_bytes(orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY))
            if blob:
                conn.send_bytes(blob.pop())
        except SnapshotError as exc:  # a refused snapshot is an answer, not a failure
            blob.clear()
            error = {
                "error": str(exc),
                "snapshot": [exc.reason.value, str(exc.path), exc.detail],
                "m": metrics_bridge.export_engine_deltas(),  # the refusal is counted in the worker's metrics
            }
            conn.send_bytes(orjson.dumps(error))
        except Exception as exc:  # noqa: BLE001 - handed to the worker, which crashes loudly
            blob.clear()
            error = {"error": repr(exc), "tb": traceback.format_exc(), "type": type(exc).__name__}
            conn.send_bytes(orjson.dumps(error))


class RemoteEngine:
    """The engine's worker-facing API, answered by a child process.

    Calls block (run them on one worker thread, like the in-process engine); they are
    serialised by a lock, so two threads never interleave requests on the pipe.
    """

    TABLES: ClassVar[tuple[str, ...]] = ("social", "items", "activity")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ctx = mp.get_context("spawn")  # never fork a process holding threads, torch and sockets
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(
            target=_serve, args=(child_conn, settings.model_dump_json().encode()), name="socrec-engine", daemon=True
        )
        self._proc.start()
        child_conn.close()
        self._lock = threading.Lock()
        self._known_items: set[str] = set()
        self._blob = b""
        self.model_version = "zero-shot"
        if not self._conn.poll(START_TIMEOUT_S):
            self.close()
            raise EngineProcessError(f"engine process did not start within {START_TIMEOUT_S:.0f}s")
        first = self._read()
        self.model_version = str(first["model_version"])
        log.info("engine process %d ready (model %s)", self._proc.pid, self.model_version)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _read(self) -> Any:
        try:
            reply = orjson.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as exc:
            code = self._proc.exitcode
            raise EngineProcessError(f"engine process died (exit code {code})") from exc
        if reply.get("blob"):
            self._blob = self._conn.recv_bytes()
        if reply.get("m"):
            metrics_bridge.apply_engine_deltas(reply["m"])
        if "snapshot" in reply:
            reason, path, detail = reply["snapshot"]
            raise SnapshotError(SnapshotErrorReason(reason), path, detail)
        if "error" in reply:
            raise EngineProcessError(f"engine call failed: {reply['error']}\n{reply.get('tb', '')}")
        version = reply.get("v")
        if version is not None and version != self.model_version:
            self.model_version = str(version)
            metrics.set_model_version(self.model_version)
        return reply["ok"]

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._conn.send_bytes(orjson.dumps([method, list(args)], option=orjson.OPT_NON_STR_KEYS))
            except (BrokenPipeError, OSError) as exc:
                raise EngineProcessError(f"engine process is gone (exit code {self._proc.exitcode})") from exc
            return self._read()

    # ------------------------------------------------------------------ the worker's API
    @property
    def next_model_version(self) -> str:
        """The version served from the next call on: the child reports its engine's
        ``next_model_version`` at start (a snapshot found then attaches on the first call) and the
        version it serves after every call, when nothing is pending any more."""
        return self.model_version

    def knows_item(self, item_id: str | None) -> bool:
        """Answered here, from the item table's keys, so holding a click costs no round trip."""
        return item_id in self._known_items

    def step(
        self, events: Sequence[Event], now: float | None = None, positions: Sequence[Position | None] | None = None
    ) -> dict[str, Any]:
        if now is not None:
            raise ValueError("the engine process keeps its own clock")
        wire = [[topic_of(ev), to_dict(ev)] for ev in events]
        out: dict[str, Any] = self.call("step", wire, None if positions is None else list(positions))
        blob, at, encoded = self._blob, 0, []
        for user_id, kind, source, n in out["payloads"]:
            encoded.append(Encoded(user_id, kind, source, blob[at : at + n]))
            at += n
        out["payloads"] = encoded
        items = out["table_updates"].get("items") or {}
        for item_id, value in items.items():
            if value is None:
                self._known_items.discard(item_id)
            else:
                self._known_items.add(item_id)
        return out

    def restore(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        self.call("restore", tables)
        self._known_items = set(tables.get("items", {}))

    def upsert(self, values: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        result: dict[str, int] = self.call("upsert", values)
        for item_id, value in (values.get("items") or {}).items():
            if value is None:  # another worker's eviction
                self._known_items.discard(item_id)
            else:
                self._known_items.add(item_id)
        return result

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self.call("stats")
        return result

    def recommend_now(self, user_id: str, kind: str = "items") -> dict[str, Any] | None:
        """``Engine.recommend_now`` in the engine process (the HTTP API's reads)."""
        result: dict[str, Any] | None = self.call("recommend_now", user_id, kind)
        return result

    def answer_now(self, user_id: str, text: str, k: int | None = None) -> dict[str, Any] | None:
        """``Engine.answer_now`` in the engine process."""
        result: dict[str, Any] | None = self.call("answer_now", user_id, text, k)
        return result

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Any other public engine method (e.g. ``load_snapshot(path)``), with JSON arguments."""
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.call(name, *args)

    def close(self) -> None:
        """Ask the child to exit; kill it if it does not."""
        if self._proc.is_alive():
            with contextlib.suppress(Exception), self._lock:
                self._conn.send_bytes(orjson.dumps(["close", []]))
                if self._conn.poll(STOP_TIMEOUT_S):
                    self._conn.recv_bytes()
            self._proc.join(STOP_TIMEOUT_S)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(STOP_TIMEOUT_S)
        with contextlib.suppress(Exception):
            self._conn.close()

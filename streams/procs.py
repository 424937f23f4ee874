"""Worker processes as managed children (demo, bench, tests): start, wait ready, stop, kill.

A worker is a real ``python -m streams worker`` process: the demo and the tests exercise
exactly what an operator runs. Each child gets its own process group (so a terminal Ctrl-C
reaches the parent, which stops children in order) and dies with the parent on Linux.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from socrec_online.broker import child_preexec


class WorkerFailed(RuntimeError):
    pass


class WorkerProcess:
    """``python -m streams worker`` with ``env`` overrides (SOCREC_*), logs to ``log_path``."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        passthrough: bool = False,
        log_path: Path | None = None,
        loglevel: str | None = "WARNING",
        extra_args: list[str] | None = None,
    ) -> None:
        """``loglevel`` None: no --loglevel flag, the worker's SOCREC_LOG_LEVEL decides."""
        self.env = env
        self.passthrough = passthrough
        self.loglevel = loglevel
        self.extra_args = extra_args or []
        self._tmp = Path(tempfile.mkdtemp(prefix="socrec-worker-"))
        self.ready_file = self._tmp / "ready.json"
        self.log_path = log_path or (self._tmp / "worker.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "streams", "worker", "--ready-file", str(self.ready_file)]
        if self.loglevel is not None:
            cmd += ["--loglevel", self.loglevel]
        if self.passthrough:
            cmd.append("--passthrough")
        return cmd + self.extra_args

    def start(self) -> Self:
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=child_preexec(),  # noqa: PLW1509
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Block until the worker recovered its tables and can process (its ready file)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                return dict(json.loads(self.ready_file.read_text()))
            if self.proc is not None and self.proc.poll() is not None:
                raise WorkerFailed(f"worker exited with {self.proc.returncode}; log tail:\n{self.log_tail()}")
            time.sleep(0.1)
        raise WorkerFailed(f"worker not ready after {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful: Faust commits and leaves the group), SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole group (the crash case of the reliability tests)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

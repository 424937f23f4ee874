"""``socrec demo`` as a user runs it (real MiniLM text model): it works, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


class Demo:
    """``socrec demo`` in a child process; records every descendant it ever had."""

    def __init__(self, *args: str, tmp: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCREC_")}
        env["PYTHONPATH"] = str(ROOT)  # this checkout's code, in the demo and in the workers it starts
        env["SOCREC_SNAPSHOT_DIR"] = str(tmp / "snapshots")  # no trained snapshot: zero-shot
        env.update(PYTHONUNBUFFERED="1", COLUMNS="250")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "demo", "--no-live", *args],  # = socrec demo
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp,
        )
        self.lines: list[str] = []
        self.descendants: dict[int, str] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def track(self) -> None:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return
        for c in children:
            try:
                # the latest command line: a child seen between fork and exec shows its parent's
                cmd = " ".join(c.cmdline())
            except psutil.Error:
                cmd = ""  # gone meanwhile: what was seen of it stays
            if cmd or c.pid not in self.descendants:  # a zombie's is empty
                self.descendants[c.pid] = cmd

    def wait_for_output(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.track()
            if re.search(pattern, self.output):
                return
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in demo output:\n{self.output}")

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.track()
            time.sleep(0.2)
        if self.proc.poll() is None:
            self.proc.kill()
            raise AssertionError(f"demo still running after {timeout:.0f}s:\n{self.output}")
        self._reader.join(timeout=5)
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def survivors(self) -> list[str]:
        alive = []
        for pid, cmd in self.descendants.items():
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {cmd}")
            except psutil.NoSuchProcess:
                pass
        return alive


def test_demo_runs_to_the_end_and_leaves_no_process(tmp_path: Path) -> None:
    demo = Demo("--events", "300", "--rate", "100", "--scale", "0.1", tmp=tmp_path)
    code = demo.wait(timeout=240)
    out = demo.output
    assert code == 0, out
    assert "Prometheus metrics: http://127.0.0.1:" in out
    m = re.search(r"done: (\d+) events sent, recommendations \{'items': (\d+)", out)
    assert m, out
    assert int(m.group(2)) > 0
    # latency by the phase its events were sent in: the bootstrap burst apart from the live replay
    assert re.search(r"events sent in live replay at 100 events/s: p50 \d+ ms, p95 \d+ ms, p99 \d+ ms", out), out
    assert any("streams worker" in c for c in demo.descendants.values()), demo.descendants
    assert any("streams trainer" in c for c in demo.descendants.values()), demo.descendants
    assert "model " in out and "fine-tunes" in out  # the serving model_version and the trainer's runs
    # the broker the demo started: Apache Kafka by default (tansu with SOCREC_BROKER=embedded)
    assert any("kafka.Kafka" in c or "tansu" in c for c in demo.descendants.values()), demo.descendants
    assert demo.survivors() == []


def test_demo_ctrl_c_stops_everything(tmp_path: Path) -> None:
    demo = Demo("--events", "100000", "--rate", "50", "--scale", "0.1", tmp=tmp_path)
    demo.wait_for_output(r"live replay", timeout=240)
    demo.track()
    demo.proc.send_signal(signal.SIGINT)
    code = demo.wait(timeout=60)
    assert code == 130, demo.output
    assert "interrupted" in demo.output
    assert demo.survivors() == []

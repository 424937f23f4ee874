"""The embedded broker: a real Kafka-protocol server that starts, answers, and stops without leftovers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from socrec_online.broker import BrokerError, EmbeddedBroker, free_port, kafka_ping

pytestmark = pytest.mark.integration


def test_broker_starts_answers_kafka_and_stops_clean(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "b.log") as b:
        pid = b.pid
        assert pid is not None and psutil.pid_exists(pid)
        assert kafka_ping(b.host, b.port) == [(b.host, b.port)]  # ApiVersions + Metadata round trip
        # a second broker on the same port fails fast with the reason, and leaves the first alone
        with pytest.raises(BrokerError):
            EmbeddedBroker(port=b.port, ready_timeout=5).start()
        assert kafka_ping(b.host, b.port)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(OSError):
        kafka_ping("127.0.0.1", b.port, timeout=0.5)


def test_socrec_broker_command_runs_until_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "broker", "--port", str(port)],  # = socrec broker
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(rf"ready on 127\.0\.0\.1:{port}", line), line
        kids = psutil.Process(proc.pid).children(recursive=True)
        assert kids, "the broker runs as a child process"
        assert kafka_ping("127.0.0.1", port)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        time.sleep(0.2)
        assert not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            proc.kill()

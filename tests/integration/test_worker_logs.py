"""What ``socrec worker`` logs with no --loglevel flag: SOCREC_LOG_LEVEL's default (INFO) in the
JSON format of SOCREC_LOG_FORMAT, showing start-up, the partition assignment, the model it serves
and dead-letter counts, without the Kafka client's INFO chatter."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def json_records(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_worker_logs_at_info_by_default_in_json(service_factory: Any) -> None:
    from streams.procs import WorkerProcess

    svc = service_factory("logs.")
    env = {**svc.env, "SOCREC_LOG_FORMAT": "json"}
    env.pop("SOCREC_LOG_LEVEL", None)
    worker = WorkerProcess(env, log_path=svc.workdir / "worker.log", loglevel=None)
    svc.worker = worker  # stopped by the fixture at module end
    worker.start()
    worker.wait_ready(180)
    svc.send_raw("clicks", "u1", b"{not json")
    svc.send_raw("likes", "u2", b'{"event_id": "x", "user_id": "u2"}')

    def messages() -> list[str]:
        return [r["message"] for r in json_records(svc.worker.log_path.read_text("utf-8", "replace"))]

    deadline = time.monotonic() + 60
    while not any(m.startswith("dead-lettered") for m in messages()) and time.monotonic() < deadline:
        time.sleep(1)
    records = json_records(worker.log_path.read_text("utf-8", "replace"))
    msgs = [r["message"] for r in records]
    assert any(m.startswith("socrec-online ") and "worker starting" in m for m in msgs), msgs
    assert "serving model zero-shot" in msgs
    assigned = [m for m in msgs if m.startswith("input partitions assigned: ")]
    assert assigned and "clicks" in assigned[-1], msgs
    assert any(m.startswith("worker ready") for m in msgs), msgs
    dead = [m for m in msgs if m.startswith("dead-lettered")]
    assert dead and "bad_json=1" in " ".join(dead) and "missing_field=1" in " ".join(dead), msgs
    assert not [r for r in records if r["level"] in ("INFO", "DEBUG") and r["logger"].startswith("aiokafka")]
    assert {r["level"] for r in records} <= {"INFO", "WARNING", "ERROR"}

"""Online learning on a real broker: the trainer publishes, workers hot-swap, bad snapshots are
refused, rollback is announced and followed.

One worker and one trainer (separate processes, like ``socrec demo``); tiny text model, a small
synthetic stream. The gate tolerance is wide here (this test is about the mechanics; the gate's
accept/reject decisions are unit-tested).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from socrec_online.broker import free_port
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import Click, Event
from streams.observe import scrape
from streams.replay import split_stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def online(service_factory) -> Any:  # type: ignore[no-untyped-def]
    from streams.trainer import TrainerProcess

    svc = service_factory("tr.")
    svc.env.update(
        {
            "SOCREC_FINETUNE_EVERY_EVENTS": "300",
            "SOCREC_FINETUNE_MIN_EVENTS": "50",
            "SOCREC_FINETUNE_MIN_PAIRS": "50",
            "SOCREC_FINETUNE_STEPS": "15",
            "SOCREC_FINETUNE_BATCH_PAIRS": "128",
            "SOCREC_LORA_R": "2",
            "SOCREC_GATE_TOLERANCE": "1.0",
            "SOCREC_TRAINER_APP_ID": "it-tr-trainer",
            "SOCREC_TRAINER_METRICS_PORT": str(free_port()),
        }
    )
    svc.start()
    trainer = TrainerProcess(svc.env, log_path=svc.workdir / "trainer.log", loglevel="INFO")
    trainer.start()
    trainer.wait_ready(120)
    svc.trainer = trainer
    yield svc
    trainer.stop()


def _stream() -> tuple[list[Event], list[Event]]:
    ds = generate(SyntheticConfig(n_users=60, n_items=100, interactions_per_user=12, seed=3))
    head, rest = split_stream(ds)
    t = time.time()
    live = [dataclasses.replace(e, ts=t + k * 1e-3) for k, e in enumerate([*head, *rest])]
    return live[: len(head)], live[len(head) :]


def _updates(svc: Any) -> list[dict[str, Any]]:
    return [r.value for r in svc.records("model-updates") if isinstance(r.value, dict)]


def _served_version(svc: Any, user: str, item: str, tag: str) -> str:
    """Send one click and return the model_version of the recommendation it triggers."""
    ev = Click(f"probe-{tag}", user, item, time.time())
    svc.send(ev)
    recs = svc.wait_for("recommendations", lambda r: r.value.get("source_event_id") == ev.event_id, timeout=60)
    return str(recs[-1].value["model_version"])


def _wait_version(svc: Any, want: str, user: str, item: str, tag: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    k = 0
    got = ""
    while time.monotonic() < deadline:
        k += 1
        got = _served_version(svc, user, item, f"{tag}-{k}")
        if got == want:
            return got
        time.sleep(0.5)
    pytest.fail(f"worker serves {got}, not {want}:\n{svc.worker.log_tail()}")


def _corrupt_copy(root: Path, good: str, name: str, how: str) -> Path:
    bad = root / name
    shutil.copytree(root / good, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["version"] = name
    (bad / "manifest.json").write_text(json.dumps(m))
    w = bad / "model.safetensors"
    data = bytearray(w.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x10
    else:
        data = data[: len(data) // 2]
    w.write_bytes(bytes(data))
    return bad


def test_trainer_publishes_workers_swap_refuse_corrupt_and_follow_rollback(online: Any) -> None:
    from streams.model_updates import announce

    svc = online
    head, rest = _stream()
    svc.send_and_wait(*head, timeout=90)
    user, item = rest[0].user_id, rest[0].item_id  # type: ignore[union-attr]
    assert _served_version(svc, user, item, "zero") == "zero-shot"

    # wave 1 -> the trainer's first snapshot, announced; the worker switches to it
    svc.send(*rest[: len(rest) // 2])
    ups = svc.wait_for("model-updates", lambda r: isinstance(r.value, dict), timeout=120)
    first = ups[0].value
    assert set(first) == {"version", "path", "metrics", "ts"}
    v1 = first["version"]
    manifest = json.loads((Path(first["path"]) / "manifest.json").read_text())
    assert manifest["parent"] is None and "candidate" in manifest["metrics"] and "current" in manifest["metrics"]
    _wait_version(svc, v1, user, item, "v1")

    # a bit-flipped and a truncated snapshot are announced: both refused, v1 keeps serving
    root = svc.settings.snapshot_dir
    for name, how in (("v9001-20990101T000000", "flip"), ("v9002-20990101T000000", "truncate")):
        bad = _corrupt_copy(root, v1, name, how)
        asyncio.run(announce(svc.settings, name, str(bad)))
    port = int(svc.env["SOCREC_METRICS_PORT"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = scrape(port)
        checksum = m.get('socrec_snapshot_rejected_total{reason="checksum"}', 0.0)
        truncated = m.get('socrec_snapshot_rejected_total{reason="truncated"}', 0.0)
        if checksum >= 1 and truncated >= 1:
            break
        time.sleep(0.3)
    assert checksum >= 1 and truncated >= 1, m
    assert _served_version(svc, user, item, "after-bad") == v1
    for name in ("v9001-20990101T000000", "v9002-20990101T000000"):
        shutil.rmtree(root / name)

    # wave 2 -> a second version fine-tuned from the first; the worker follows
    svc.send(*rest[len(rest) // 2 :])
    ups = svc.wait_for("model-updates", lambda r: isinstance(r.value, dict) and r.value["version"] != v1
                       and not r.value["version"].startswith("v900"), timeout=120)
    v2 = ups[-1].value["version"]
    _wait_version(svc, v2, user, item, "v2")
    svc.trainer.stop()  # nothing publishes over the rollback below


    # rollback moves CURRENT back and announces it; the worker serves the previous version again
    env = {**os.environ, **svc.env}
    done = subprocess.run(
        [sys.executable, "-m", "streams", "snapshots", "rollback"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    back = [u["version"] for u in _updates(svc)][-1]
    assert back == v1  # v2's parent
    _wait_version(svc, back, user, item, "rollback")

    # a restarted trainer rebuilds its buffer from the log and fine-tunes from CURRENT (v1) next
    from streams.trainer import TrainerProcess

    again = TrainerProcess(svc.env, log_path=svc.workdir / "trainer-2.log", loglevel="INFO").start()
    try:
        again.wait_ready(120)
        t = time.time()
        svc.send(*(dataclasses.replace(e, event_id=f"again-{e.event_id}", ts=t + k * 1e-3)
                   for k, e in enumerate(rest[:150])))
        ups = svc.wait_for("model-updates", lambda r: isinstance(r.value, dict) and r.value["version"] > v2
                           and not r.value["version"].startswith("v900"), timeout=120)
        v3 = ups[-1].value["version"]
        assert json.loads((root / v3 / "manifest.json").read_text())["parent"] == v1
        assert "rewound" in (svc.workdir / "trainer-2.log").read_text()
    finally:
        again.stop()

"""The engine in a child process answers exactly like the engine in this one, and fails loudly."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest

from socrec_online import metrics
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import Click
from socrec_online.service.engine import Engine
from socrec_online.service.remote import EngineProcessError, RemoteEngine
from socrec_online.settings import Settings

pytestmark = pytest.mark.slow  # spawns real engine processes (a few seconds each)


def _comparable(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "ts"}  # wall-clock publish time


@pytest.fixture(scope="module")
def settings(tiny_text_model_path: Path) -> Settings:
    return Settings(device="cpu", text_model_path=tiny_text_model_path, torch_threads=1)


def test_engine_process_matches_the_engine_and_forwards_its_metrics(settings: Settings) -> None:
    ds = generate(SyntheticConfig(n_users=30, n_items=40, interactions_per_user=5, seed=3))
    events = list(ds.events())
    local = Engine.from_settings(settings)
    remote = RemoteEngine(settings)
    try:
        assert remote.pid != os.getpid()
        before = metrics.sample("socrec_events_total", {"topic": "follows", "outcome": "ok"}) or 0.0
        state: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}
        for start in range(0, len(events), 50):
            chunk = events[start : start + 50]
            want = local.step(chunk)  # both on the event-time clock
            got = remote.step(chunk)
            assert got["rejected"] == want["rejected"]
            assert got["table_updates"] == orjson.loads(orjson.dumps(want["table_updates"]))
            # payloads cross as the bytes the worker publishes; same users, kinds and lists
            assert [(p.user_id, p.kind) for p in got["payloads"]] == [
                (p["user_id"], p["kind"]) for p in want["payloads"]
            ]
            for enc, p in zip(got["payloads"], want["payloads"], strict=True):
                g, w = _comparable(orjson.loads(enc.data)), _comparable(p)
                assert [i["id"] for i in g["items"]] == [i["id"] for i in w["items"]]
                assert [i["reason"] for i in g["items"]] == [i["reason"] for i in w["items"]]
            for name, kv in got["table_updates"].items():
                state[name].update(kv)
        assert remote.stats() == local.stats()
        # the child's counters reach this process's /metrics (the local engine counts here too)
        follows = sum(1 for e in events if type(e).__name__ == "Follow")
        after = metrics.sample("socrec_events_total", {"topic": "follows", "outcome": "ok"})
        assert after == pytest.approx(before + 2 * follows)
        # the click-holding check is answered here, from the items the engine accepted
        assert remote.knows_item(ds.items.id(0)) and not remote.knows_item("no-such-item")
        # a restarted engine process rebuilt from the tables knows the same
        remote.close()
        remote = RemoteEngine(settings)
        remote.restore(state)
        assert remote.stats() == local.stats()
        assert remote.knows_item(ds.items.id(0))
    finally:
        remote.close()


def test_refused_calls_keep_the_child_and_a_dead_child_is_an_error_not_a_hang(settings: Settings) -> None:
    remote = RemoteEngine(settings)
    try:
        with pytest.raises(EngineProcessError, match="private"):
            remote.call("_reset")
        assert remote.stats()["items"] == 0  # the child survives a refused call
        assert remote.pid is not None
        os.kill(remote.pid, signal.SIGKILL)
        with pytest.raises(EngineProcessError, match="died|gone"):
            remote.step([Click("e1", "u1", "i1", 1.0)])
    finally:
        remote.close()

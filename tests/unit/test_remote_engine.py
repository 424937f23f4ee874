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
from socrec_online.service.decode import DecodeError, decode_event
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


def test_every_record_the_worker_accepts_crosses_to_the_engine_process(tiny_text_model_path: Path) -> None:
    """A click with ``dwell_ms: 1e20`` once killed the worker (orjson refuses 64-bit+ integers) on
    every restart, and an ``items`` record of exactly the size limit grew past it when re-encoded
    (``1e9`` -> ``1000000000.0``) and was refused by the engine process. Each is either a dead
    letter or applied, never an engine failure."""
    s = Settings(
        device="cpu", text_model_path=tiny_text_model_path, torch_threads=1, max_payload_bytes=1024,
        max_text_bytes=2048,
    )  # fmt: skip
    head, tail = b'{"event_id":"p1","item_id":"big","ts":1e9,"text":"', b'"}'
    item = head + b"x" * (s.max_payload_bytes - len(head) - len(tail)) + tail
    click = b'{"event_id":"c1","user_id":"u1","item_id":"big","ts":1e9,"dwell_ms":1e20}'
    good_click = b'{"event_id":"c2","user_id":"u1","item_id":"big","ts":1e9,"dwell_ms":2e3}'
    remote = RemoteEngine(s)
    try:
        reasons: list[str] = []
        for topic, raw in [("items", item), ("clicks", click), ("clicks", good_click)]:
            try:
                ev = decode_event(topic, raw, s)
            except DecodeError as exc:
                reasons.append(exc.reason.value)
                continue
            out = remote.step([ev])
            assert out["rejected"] == [] and out["applied"] == 1
            reasons.append("applied")
        assert reasons == ["applied", "out_of_range", "applied"]
        assert remote.knows_item("big")
    finally:
        remote.close()


def test_deletions_cross_to_the_engine_process_and_leave_its_known_items(tiny_text_model_path: Path) -> None:
    from socrec_online.events import ItemPublished

    s = Settings(device="cpu", text_model_path=tiny_text_model_path, torch_threads=1,
                 item_ttl_s=100.0, item_retention_s=100.0, retention_sweep_s=10.0)  # fmt: skip
    t0 = 1_700_000_000.0
    remote = RemoteEngine(s)
    try:
        remote.step([ItemPublished("p1", "i1", t0, "jazz quartet"), ItemPublished("p2", "i2", t0, "gravel climb")])
        assert remote.knows_item("i1") and remote.knows_item("i2")
        remote.upsert({"items": {"i2": None}})  # its owner evicted it (a tombstone read by the mirror)
        assert not remote.knows_item("i2") and remote.stats()["items"] == 1
        out = remote.step([ItemPublished("p3", "i3", t0 + 1000, "pasta sauce recipe")])
        assert out["table_updates"]["items"]["i1"] is None  # evicted by the engine process's sweep
        assert not remote.knows_item("i1") and remote.knows_item("i3")
    finally:
        remote.close()


def test_the_engine_process_counts_its_evictions_and_trimmed_values_in_this_process(tiny_text_model_path: Path) -> None:
    """``socrec_evictions_total`` and ``socrec_state_trimmed_total`` are counted in the engine
    process; the worker's /metrics (this process) must show them rise."""
    from socrec_online.events import ItemPublished

    s = Settings(device="cpu", text_model_path=tiny_text_model_path, torch_threads=1, user_ttl_s=5000.0,
                 item_ttl_s=3000.0, item_retention_s=1000.0, retention_sweep_s=100.0,
                 max_table_value_bytes=300_000, seen_per_user=100_000, recent_per_user=50)  # fmt: skip
    t0 = 1_700_000_000.0
    items = [f"{'i' * 200}{n}" for n in range(2000)]  # ~400 encoded bytes each in a seen list

    def count(name: str, labels: dict[str, str]) -> float:
        return metrics.sample(name, labels) or 0.0

    trimmed = count("socrec_state_trimmed_total", {"table": "activity"})
    users, gone_items = (count("socrec_evictions_total", {"kind": k}) for k in ("users", "items"))
    remote = RemoteEngine(s)
    try:
        remote.step([ItemPublished(f"p{n}", item, t0, "jazz") for n, item in enumerate(items)])
        remote.step([Click(f"c{n}", "ann", item, t0 + n) for n, item in enumerate(items)])
        assert count("socrec_state_trimmed_total", {"table": "activity"}) > trimmed  # ann's seen list
        later = t0 + 2000 + 5000 + 500  # past ann's TTL and the items' TTL + retention
        out = remote.step([ItemPublished("q", "fresh", later, "pasta")])
        assert out["table_updates"]["activity"]["ann"] is None
        assert count("socrec_evictions_total", {"kind": "users"}) == users + 1
        assert count("socrec_evictions_total", {"kind": "items"}) == gone_items + len(items)
    finally:
        remote.close()

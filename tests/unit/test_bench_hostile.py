"""The hostile inputs the reliability bench generates: each gets the verdict it is built for.

Boundary cases (``benchmarks/hostile.py``) at and just past every decoder bound, on two sets of
limits, through the service path in process; the poison records of the live scenario
(``benchmarks/poison.py``) through the decoder and key check; the bench's crash count and verdict.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.hostile import ACCEPTED, boundary_cases, passed, run_boundaries, summary
from benchmarks.poison import answered_stream, poison_records
from fuzz.service_path import path_settings
from socrec_online.events import INPUT_TOPICS, ItemPublished, key_of
from socrec_online.service.decode import DecodeError, check_key, decode_event
from socrec_online.settings import Settings


@pytest.mark.parametrize("limits", ["defaults", "small"])
def test_boundary_cases_get_their_verdicts_and_crash_nothing(limits: str, tiny_text_model_path: Path) -> None:
    s = Settings(device="cpu", torch_threads=1) if limits == "defaults" else path_settings()
    cases = boundary_cases(s)
    verdicts = Counter(v for _t, _k, _raw, v in cases)
    assert {t for t, *_ in cases} == set(INPUT_TOPICS)
    assert verdicts[ACCEPTED] > 50 and len(verdicts) >= 9  # at the bound, and past it for each kind of bound
    assert max(len(raw) for *_, raw, _v in cases) == s.max_payload_bytes + 1
    r = run_boundaries(s, tiny_text_model_path)
    assert r["cases"] == len(cases)
    assert r["wrong_verdict"] == 0, r["wrong_examples"]
    assert r["crashes"] == 0, r["crash_examples"]
    assert r["outcomes"].get("applied", 0) > 50  # accepted ones reached the engine and changed it


def test_poison_records_get_their_reasons_on_every_topic() -> None:
    good = answered_stream(100, seed=3, tag="t")
    users = sorted({key_of(e) for e in good if not isinstance(e, ItemPublished)})
    items = sorted({e.item_id for e in good if isinstance(e, ItemPublished)})
    bad = poison_records(2000, users=users, items=items, seed=3)
    s = Settings()
    wrong: list[tuple[str, str, str]] = []
    for topic, key, value, reason in bad:
        try:
            ev = decode_event(topic, value, s)
            check_key(ev, None if key is None else key.encode())
            got = "decoded"
        except DecodeError as exc:
            got = exc.reason.value
        if got != reason and not (reason == "unknown_item" and got == "decoded"):  # the engine's reason
            wrong.append((topic, reason, got))
    assert not wrong, wrong[:10]
    assert {t for t, *_ in bad} == set(INPUT_TOPICS)
    by_topic_reason = {(t, r) for t, _k, _v, r in bad}
    for topic in INPUT_TOPICS:  # the kinds any topic can carry reach every topic
        assert {"bad_json", "bad_utf8", "payload_too_large", "wrong_key"} <= {r for t, r in by_topic_reason if t == topic}


def test_crashes_count_every_source_and_fail_the_bench() -> None:
    bounds = {"cases": 10, "wrong_verdict": 0, "crashes": 0}
    fuzz = {"inputs": 500, "seconds": 5.0, "crashes": 0, "exit_code": 0}
    poison = {"agent_restarts": 0}
    load = {"same_process": True, "rss_mib_end": 100.0, "rss_growth_second_half": 1.0004}
    r = summary(bounds, fuzz, poison, load)
    assert r["crashes"] == 0 and r["rss_end_bytes"] == 100 * 2**20 and r["rss_growth_second_half"] == 1.0
    assert passed(r)
    assert not passed(summary(bounds, {**fuzz, "crashes": 1, "exit_code": 1}, poison, load))
    assert not passed(summary(bounds, fuzz, {"agent_restarts": 1}, load))
    assert summary(bounds, fuzz, poison, {**load, "same_process": False})["crashes"] == 1
    assert not passed(summary({**bounds, "wrong_verdict": 1}, fuzz, poison, load))
    assert not passed(summary(bounds, {**fuzz, "inputs": 0, "exit_code": 2}, poison, load))  # the fuzzer never ran
    assert passed(summary(bounds, None, poison, load))  # --fuzz-seconds 0

"""Must 3: thousands of bad records of every kind, interleaved with good ones, through a live worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from streams.bench_reliability import Rig, make_stream, poison_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REASONS = {
    "bad_json", "not_object", "wrong_type", "missing_field", "unknown_item", "not_finite", "text_too_long",
    "payload_too_large", "bad_utf8", "self_follow", "empty_payload", "empty_id", "id_too_long",
    "bad_timestamp", "out_of_range", "empty_text",
}  # fmt: skip


def test_every_bad_record_is_dead_lettered_with_origin_and_every_good_one_applied(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory("poison.", env={"SOCREC_UNKNOWN_ITEM_GRACE_S": "0.5"})
    good = make_stream(400, partitions=3, seed=5, tag="g")
    r = asyncio.run(poison_scenario(rig, good, 2000, seed=5, timeout=240))
    print({k: v for k, v in r.items() if k != "by_reason"}, r["by_reason"])
    assert r["bad_inputs"] == 2000
    assert set(r["by_reason"]) == REASONS  # every kind was tried
    # each bad record is in dead-letters, found by its origin (topic, partition, offset), with its reason
    assert r["dead_lettered"] == r["bad_inputs"], r["missing_examples"]
    assert r["dead_lettered_right_reason"] == r["bad_inputs"], r["wrong_reason_examples"]
    assert r["dead_letters_repeated"] == 0  # once each, however often the consumer re-read it
    assert r["good_applied"] == r["good"] == len(good)
    assert r["agent_errors"] == 0 and r["agent_restarts"] == 0
    assert r["same_process"]  # same pid and process start time throughout

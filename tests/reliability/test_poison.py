"""Issue #19: an independent client (confluent-kafka on its defaults) sends 10,000 hostile records of
every kind across every input topic, interleaved with good events, to a live worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from benchmarks.harness.rig import Rig
from benchmarks.poison import ANSWERED_TOPICS, answered_stream, poison_scenario
from socrec_online.events import INPUT_TOPICS, topic_of

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

N_BAD = 10_000
REASONS = {
    "bad_json", "not_object", "wrong_type", "missing_field", "unknown_item", "not_finite", "text_too_long",
    "payload_too_large", "bad_utf8", "self_follow", "empty_payload", "empty_id", "id_too_long",
    "bad_timestamp", "out_of_range", "empty_text", "wrong_key",
}  # fmt: skip


def test_every_bad_record_is_dead_lettered_with_origin_and_every_good_one_answered(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory("poison.", env={"SOCREC_UNKNOWN_ITEM_GRACE_S": "0.5"})
    good = answered_stream(1000, seed=5, tag="g")
    r = asyncio.run(poison_scenario(rig, good, N_BAD, seed=5, timeout=600, producer="confluent"))
    print({k: v for k, v in r.items() if k != "by_reason"}, r["by_reason"])
    assert r["bad_inputs"] == N_BAD
    assert set(r["by_reason"]) == REASONS  # every kind was tried
    assert set(r["bad_by_topic"]) == set(r["good_by_topic"]) == set(INPUT_TOPICS)  # on every input topic
    # each bad record is in dead-letters, found by its origin (topic, partition, offset), with its reason
    assert r["dead_lettered"] == r["bad_inputs"], r["missing_examples"]
    assert r["dead_lettered_right_reason"] == r["bad_inputs"], r["wrong_reason_examples"]
    assert r["dead_letters_repeated"] == 0 and r["dead_letters_unexpected"] == 0  # once each, nothing else
    assert r["good_applied"] == r["good"] == len(good)
    # every good event of a kind the engine answers has a recommendation naming it as its source
    assert r["good_answerable"] == sum(1 for e in good if topic_of(e) in ANSWERED_TOPICS) > 0
    assert r["good_answered"] == r["good_answerable"], r["unanswered_examples"]
    assert r["agent_errors"] == 0 and r["agent_restarts"] == 0
    assert r["same_process"]  # same pid and process start time throughout

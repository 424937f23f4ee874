"""Must 1 and 2: kill -9 at random points, and SIGTERM under load: nothing lost, nothing doubled.

The worker's table state after the last restart (read through its ``/debug/state`` route,
between two batches) is compared key by key with a replay oracle: a fresh engine fed every
record read back from the source topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.crashes import crash_scenario, graceful_scenario
from benchmarks.harness.rig import Rig
from benchmarks.harness.streams import make_stream
from socrec_online.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_kill_9_three_times_loses_and_doubles_nothing(
    rig_factory: Callable[..., Rig], tiny_text_model_path: Path
) -> None:
    rig = rig_factory("kill.")
    stream = make_stream(1500, partitions=3, seed=7)
    r = asyncio.run(
        crash_scenario(
            rig, stream, kills=3, rate=150.0, seed=7, oracle_model=tiny_text_model_path, converge_timeout=90, log=print
        )
    )
    print(r)
    assert r["events"] == len(stream)
    # On failure the message carries the diagnosis: lost offsets per partition vs the committed
    # offsets, the changelog's reported vs true ends, what a recovery missed at each kill, the logs.
    assert r["lost"] == 0, (r["lost_examples"], "dead-lettered:", r["lost_dead_lettered"], r["diagnosis"])
    assert r["differing_keys"] == 0, (r["differing_examples"], r["first_difference"], r["diagnosis"])
    assert r["doubled"] == 0
    assert r["misplaced_changelog_keys"] == 0  # every table key in the partition of its events
    assert r["engine_matches_oracle"], (r["engine"], r["oracle_engine"])
    assert len(r["recovery_seconds"]) == 3
    assert sum(r["events_done_at_kill"]) > 0  # the kills hit a worker that was processing


def test_sigterm_under_load_commits_offsets_and_restarts_without_duplicates(
    rig_factory: Callable[..., Rig], tiny_text_model_path: Path
) -> None:
    rig = rig_factory("term.")
    stream = make_stream(1200, partitions=3, seed=11)
    r = asyncio.run(
        graceful_scenario(
            rig, stream, rate=150.0, seed=11, oracle_model=tiny_text_model_path, stop_timeout=60, converge_timeout=90
        )
    )
    print(r)
    assert r["exit_code"] == 0, "SIGTERM must be a clean exit"
    assert r["stop_seconds"] < 30.0
    assert r["committed_partitions"] > 0
    # The final commit covers every event whose effect reached the changelog, and nothing below
    # the commit is missing: a restart re-delivers nothing already applied.
    assert r["applied_beyond_commit"] == 0
    assert r["unapplied_below_commit"] == 0
    # At-least-once: the batch whose outputs were being written when the stop came may be
    # delivered again, and since the consumer re-reads from Faust's read mark when the first record
    # a restarted worker is handed lies past it (streams/delivery.py InOrderInput: a skipped record
    # would be lost) a few hundred records already applied come again (measured 190-260 with
    # 256-event batches; 0-56 before that rule). Their effects are never doubled (idempotent on
    # event_id: ``doubled`` and the oracle comparison below); the bound catches a restart that
    # re-reads whole partitions.
    assert r["redelivered_after_restart"] <= 4 * Settings().batch_max_events
    assert r["events"] == len(stream)
    assert r["lost"] == 0, (r["lost_examples"], "dead-lettered:", r["lost_dead_lettered"])
    assert r["differing_keys"] == 0, (r["differing_examples"], r["first_difference"])
    assert r["doubled"] == 0

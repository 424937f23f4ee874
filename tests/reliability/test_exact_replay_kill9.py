"""Issue #19, finding 3: replay after kill -9 is exact however many events of one key were not
committed. A value remembered only its last ``dedup_ids_per_key`` (64) event ids, so a key with more
uncommitted events than that applied the older ones again; now each value remembers, per input
partition, the last offset it applied (``socrec_online.service.state.replayed``).

One user comments on a few items hundreds of times, interleaved with the ordinary stream at a rate
where a commit interval holds far more than 64 of them; each comment adds weight to its item, so an
effect applied twice, or lost, shows in the user's value against the replay oracle.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.crashes import crash_scenario
from benchmarks.harness.rig import Rig
from benchmarks.harness.streams import make_stream
from socrec_online.events import Comment, Event, ItemPublished
from socrec_online.partitioning import owner_partition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOT_EVENTS = 1500


def with_hot_key(stream: list[Event], n: int, *, partitions: int, seed: int) -> tuple[list[Event], str]:
    """``stream`` with ``n`` comments of one user on five of its items, spread after the items."""
    rng = random.Random(seed)
    user = "hot"
    items = [ev.item_id for ev in stream if isinstance(ev, ItemPublished)][:5]
    first = max(i for i, ev in enumerate(stream) if isinstance(ev, ItemPublished)) + 1
    p = owner_partition(user, partitions)
    out = list(stream)
    t = stream[0].ts
    for k in range(n):
        text = rng.choice(["this is wonderful, I love it", "lovely", "great fun"])  # weights of one sign
        at = rng.randrange(first, len(out) + 1)
        out.insert(at, Comment(f"s.comments.p{p}.hot{k:07d}", user, items[k % len(items)], t, text))
    return out, user


def test_hundreds_of_uncommitted_events_of_one_key_replay_exactly_across_kill_9(
    rig_factory: Callable[..., Rig], tiny_text_model_path: Path
) -> None:
    rig = rig_factory("hot.")
    stream, _user = with_hot_key(make_stream(1500, partitions=3, seed=5), HOT_EVENTS, partitions=3, seed=5)
    # 100 events/s for 30 s, half of them the hot key's: ~140 of its events per 2.8 s commit
    # interval, and a restart's backlog (~20 s) holds a thousand; both kills come mid-stream
    r = asyncio.run(
        crash_scenario(
            rig, stream, kills=2, rate=100.0, seed=5, oracle_model=tiny_text_model_path, converge_timeout=120, log=print
        )
    )
    print(r)
    assert r["events"] == len(stream)
    assert r["lost"] == 0, (r["lost_examples"], r["diagnosis"])
    assert r["doubled"] == 0, (r["differing_examples"], r["first_difference"], r["diagnosis"])
    assert r["differing_keys"] == 0, (r["differing_examples"], r["first_difference"], r["diagnosis"])
    assert r["engine_matches_oracle"], (r["engine"], r["oracle_engine"])
    assert len(r["recovery_seconds"]) == 2
    assert min(r["events_done_at_kill"]) > 0  # each kill hit a worker that was processing

"""The trainer's replay buffer and its triggers: what is kept, what is held out, when to fine-tune."""

from __future__ import annotations

import numpy as np

from socrec_online.events import Click, Follow, ItemPublished, Like
from socrec_online.online import BufferConfig, PrequentialMonitor, ReplayBuffer, TriggerPolicy
from socrec_online.online.buffer import sample_negatives


def _clicks(n: int, start: int = 0) -> list[Click]:
    return [Click(f"c{k}", f"u{k % 7}", f"i{k % 11}", float(k)) for k in range(start, start + n)]


def test_window_overflow_goes_to_a_bounded_uniform_reservoir() -> None:
    buf = ReplayBuffer(BufferConfig(recent_size=100, reservoir_size=50, seed=1))
    buf.learn_many(_clicks(5000))
    assert len(buf.recent) == 100 and len(buf.reservoir) == 50
    assert [p.event_id for p in buf.recent] == [f"c{k}" for k in range(4900, 5000)]  # newest kept in order
    # algorithm R: the reservoir samples the whole past, not just its start or its end
    ts = np.array([p.ts for p in buf.reservoir])
    assert ts.min() < 1500 and ts.max() > 3400 and ts.max() < 4900


def test_without_a_reservoir_the_past_is_forgotten() -> None:
    buf = ReplayBuffer(BufferConfig(recent_size=100, reservoir_size=0))
    buf.learn_many(_clicks(1000))
    assert len(buf) == 100 and min(p.ts for p in buf.recent) == 900


def test_replayed_events_are_ignored_and_undo_forgets() -> None:
    buf = ReplayBuffer(BufferConfig(recent_size=100, reservoir_size=10))
    evs = _clicks(20)
    assert buf.learn_many(evs) == 20
    assert buf.learn_many(evs) == 0 and len(buf) == 20
    buf.learn_many([Like("l1", "u9", "i3", 30.0), Like("l2", "u9", "i3", 31.0, undo=True)])
    assert not any(p.user_id == "u9" for p in buf.recent)


def test_holdout_is_the_newest_slice_and_never_trained_on() -> None:
    buf = ReplayBuffer(BufferConfig(recent_size=100, reservoir_size=100, holdout_fraction=0.2))
    items = [ItemPublished(f"it{i}", f"i{i}", 0.0, f"text {i}") for i in range(11)]
    buf.learn_many([*items, Follow("f1", "u1", "u2", 0.0), *_clicks(300)])
    data = buf.training_data()
    assert data.hold_u.size == 20
    held = {(data.user_ids[u], data.item_ids[i]) for u, i in zip(data.hold_u, data.hold_i, strict=True)}
    newest = {(p.user_id, p.item_id) for p in list(buf.recent)[-20:]}
    assert held == newest
    assert data.train_u.size == 100 + 80  # reservoir + the older window
    assert data.item_texts[data.item_ids.index("i3")] == "text 3"
    assert data.follow_src.size == 1 and data.window["to_ts"] < 280


def test_known_ids_keep_their_rows() -> None:
    buf = ReplayBuffer()
    buf.learn_many(_clicks(30))
    data = buf.training_data(known_users=["old", "u3"], known_items=["i5"])
    assert data.user_ids[:2] == ["old", "u3"] and data.item_ids[0] == "i5"


def test_negatives_avoid_the_users_positives() -> None:
    rng = np.random.default_rng(0)
    pos = {0: {0, 1, 2, 3}}
    neg = sample_negatives(np.zeros(50, np.int64), 6, 4, pos, rng)
    assert neg.shape == (50, 4) and set(neg.reshape(-1).tolist()) <= {4, 5}


def test_trigger_every_n_events_every_t_seconds_and_on_drift() -> None:
    t = TriggerPolicy(every_events=100, every_s=60.0, min_events=10)
    t.reset(now=0.0)
    t.note(99)
    assert t.due(now=1.0) is None
    t.note(1)
    assert t.due(now=1.0) == "events"
    t.reset(now=0.0)
    t.note(5)
    assert t.due(now=61.0) is None  # too few new events to be worth it
    t.note(5)
    assert t.due(now=61.0) == "time"
    t.reset(now=0.0)
    t.note(10)
    assert t.due(now=1.0) is None
    t.note_drift()
    assert t.due(now=1.0) == "drift"


def test_adwin_fires_when_the_hit_signal_drops() -> None:
    mon = PrequentialMonitor(delta=0.002)
    rng = np.random.default_rng(0)
    items = [f"i{k}" for k in range(10)]
    first = None
    for k in range(3000):
        mon.observe_recommendation("u", items)
        p_hit = 0.6 if k < 1500 else 0.1  # tastes moved: what we recommend stops being clicked
        clicked = items[0] if rng.random() < p_hit else "elsewhere"
        assert mon.observe_click("u", clicked) is not None
        if mon.take_drift() and first is None:
            first = k
    assert first is not None and 1500 <= first < 1800
    assert 0.15 < mon.hit_ratio < 0.3  # last 2000 clicks: 500 at 0.6, 1500 at 0.1
    assert mon.observe_click("nobody", "i1") is None  # no recommendation yet: no signal

"""One interest definition (issue #21 item 4): serving and the trainers build the same vector from
the same history, and the formula's terms do what a user notices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.engagement import Kind
from socrec_online.events import Click, Comment, ItemPublished, Like, Profile
from socrec_online.models.interest import History, interest_vectors
from socrec_online.models.train import ServingRules, training_view
from socrec_online.online.buffer import BufferConfig, ReplayBuffer
from socrec_online.online.finetune import interest_of
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

DAY = 86400.0
T0 = 1_700_000_000.0
WORDS = {"awful": -0.8, "terrible": -0.6, "love": 0.7, "great": 0.6}


def score(text: str) -> float:
    """A fixed sentiment for the test (VADER's sign on these words), shared by both paths."""
    return sum(v for w, v in WORDS.items() if w in text)


def test_recent_behaviour_dominates_old() -> None:
    rock, jazz = torch.eye(2)
    h = History(
        anchor=np.array([T0]), owner=np.array([0, 0]), item=np.array([0, 1]), weight=np.array([1.0, 1.0]),
        ts=np.array([T0 - 30 * DAY, T0]),
    )
    v = interest_vectors(h, torch.stack([rock, jazz]), 7 * DAY, 1.5)[0]
    assert float(v @ jazz) > 0.99  # a month-old click barely counts against today's


def test_profile_alone_gives_the_profile_and_a_panned_item_pushes_away() -> None:
    rock, jazz = torch.eye(2)
    none = np.zeros(0, np.int64)
    cold = History(anchor=np.array([0.0]), owner=none, item=none, weight=np.zeros(0), ts=np.zeros(0),
                   profile=jazz[None])
    assert torch.allclose(interest_vectors(cold, torch.stack([rock, jazz]), DAY, 1.5)[0], jazz)
    panned = History(anchor=np.array([T0]), owner=np.array([0]), item=np.array([0]), weight=np.array([-0.2]),
                     ts=np.array([T0]), profile=jazz[None])
    v = interest_vectors(panned, torch.stack([rock, jazz]), DAY, 1.5)[0]
    assert float(v @ rock) < 0 < float(v @ jazz)


@pytest.fixture(scope="module")
def replayed(encoder: Any) -> tuple[Any, Engine]:
    """A small synthetic network (likes, clicks, comments of both signs, profiles) through serving."""
    ds = generate(SyntheticConfig(n_users=40, n_items=80, interactions_per_user=10, comment_share=0.4, seed=3))
    eng = Engine(Settings(device="cpu"), encoder, sentiment=score)
    evs = list(ds.events())
    for k in range(0, len(evs), 128):
        assert eng.learn_many(evs[k : k + 128]).rejected == []
    return ds, eng


def test_serving_and_offline_training_give_the_same_interest(replayed: tuple[Any, Engine], encoder: Any) -> None:
    ds, eng = replayed
    assert any(score(c.text) < 0 for c in ds.comments) and ds.profiles
    item_text = encoder.encode(ds.item_text)
    view = training_view(ds, ds.interactions, item_text, encoder.encode, score, ServingRules.from_settings(eng.settings))
    rows = eng.store.users.rows(ds.users.all_ids)
    served = eng.store.interest[torch.as_tensor(rows)]
    assert served.abs().sum(1).gt(0).all()
    assert torch.allclose(view.interest, served, atol=1e-5)


def test_serving_and_the_online_fine_tune_give_the_same_interest(replayed: tuple[Any, Engine], encoder: Any) -> None:
    ds, eng = replayed
    buf = ReplayBuffer(BufferConfig(holdout_fraction=0.0), sentiment=score)
    buf.learn_many(ds.events())
    data = buf.training_data()
    text = encoder.encode(data.item_texts)
    got = interest_of(data, text, encoder, ServingRules.from_settings(eng.settings))
    rows = eng.store.users.rows(data.user_ids)
    assert torch.allclose(got, eng.store.interest[torch.as_tensor(rows)], atol=1e-5)


def test_offline_interest_on_a_log_without_time_is_the_mean_of_the_items() -> None:
    ds = generate(SyntheticConfig(n_users=20, n_items=40, interactions_per_user=6, comment_share=0.0, seed=1))
    inter = ds.interactions
    inter.ts[:] = 0.0
    inter.kind[:] = Kind.LIKE  # every pair a like, as a listening log
    ds.profiles = {}
    text = F.normalize(torch.randn(ds.n_items, 8), dim=1)
    got = training_view(ds, inter, text, rules=ServingRules(True, 50, 7 * DAY, 1.5)).interest
    mean = torch.zeros(ds.n_users, 8).index_add_(0, torch.as_tensor(inter.user), text[torch.as_tensor(inter.item)])
    assert torch.allclose(got, F.normalize(mean, dim=1), atol=1e-5)


def test_profile_and_click_events_reach_both_paths(encoder: Any) -> None:
    evs = [
        ItemPublished("p0", "i0", T0, "jazz saxophone quartet"),
        ItemPublished("p1", "i1", T0, "football derby goal"),
        Profile("pr", "u", T0, "I like jazz"),
        Click("c0", "u", "i0", T0 + 10),
        Like("l1", "u", "i1", T0 + 20),
        Comment("m1", "u", "i1", T0 + 30, "this is awful"),
    ]
    eng = Engine(Settings(device="cpu"), encoder, sentiment=score)
    eng.learn_many(evs)
    buf = ReplayBuffer(BufferConfig(holdout_fraction=0.0), sentiment=score)
    buf.learn_many(evs)
    data = buf.training_data()
    got = interest_of(data, encoder.encode(data.item_texts), encoder, ServingRules.from_settings(eng.settings))
    assert torch.allclose(got[data.user_ids.index("u")], eng.store.interest[eng.store.users.row("u")], atol=1e-5)

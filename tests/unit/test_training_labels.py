"""One engagement rule for serving and training (issue #21 item 4): a negative comment never becomes
a positive training label, on the offline trainer's data path and in the online fine-tune's buffer."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from socrec_online.data.base import CommentRow, Dataset, Interactions
from socrec_online.engagement import Kind, PairLedger
from socrec_online.events import Click, Comment, Event, ItemPublished, Like
from socrec_online.idmap import IdMap
from socrec_online.models.train import ServingRules, training_view
from socrec_online.online.buffer import BufferConfig, ReplayBuffer
from socrec_online.service.engine import Engine
from socrec_online.service.sentiment import vader_sentiment
from socrec_online.settings import Settings

T0 = 1_700_000_000.0
RULES = ServingRules(sentiment_weighting=True, recent_per_user=50, interest_half_life_s=7 * 86400.0, profile_weight=1.5)


def _dataset() -> Dataset:
    """u0 clicked i0 then wrote "this is awful"; u0 liked i1 and loved it; u1 clicked i0."""
    inter = Interactions(
        np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([T0, T0 + 5, T0 + 7]), np.ones(3, np.float32),
        np.array([Kind.CLICK, Kind.LIKE, Kind.CLICK], np.int8),
    )
    return Dataset(
        "t", IdMap(["u0", "u1"]), IdMap(["i0", "i1"]), ["jazz night", "football derby"], inter,
        np.zeros(0, np.int64), np.zeros(0, np.int64),
        comments=[CommentRow(0, 0, T0 + 1, "this is awful"), CommentRow(0, 1, T0 + 6, "love it")],
    )


def _pairs(inter: Interactions) -> set[tuple[int, int]]:
    return set(zip(inter.user.tolist(), inter.item.tolist(), strict=True))


def test_offline_trainer_drops_a_pair_panned_in_a_comment() -> None:
    ds = _dataset()
    view = training_view(ds, ds.interactions, torch.zeros(2, 4), rules=RULES)  # VADER, as serving
    assert _pairs(view.positives) == {(0, 1), (1, 0)}
    blind = training_view(ds, ds.interactions, torch.zeros(2, 4), rules=dataclasses.replace(RULES, sentiment_weighting=False))
    assert _pairs(blind.positives) == {(0, 0), (0, 1), (1, 0)}  # the ablation: every comment positive


def _buffer_pairs(events: list[Event]) -> set[tuple[str, str]]:
    buf = ReplayBuffer(BufferConfig(holdout_fraction=0.5))  # VADER, as serving
    buf.learn_many(events)
    d = buf.training_data()
    rows = [*zip(d.train_u.tolist(), d.train_i.tolist(), strict=True), *zip(d.hold_u.tolist(), d.hold_i.tolist(), strict=True)]
    return {(d.user_ids[u], d.item_ids[i]) for u, i in rows}


def test_online_buffer_never_trains_on_a_negative_comment() -> None:
    pub = [ItemPublished(f"p{i}", f"i{i}", T0, f"text {i}") for i in range(3)]
    got = _buffer_pairs([
        *pub,
        Click("c0", "u", "i0", T0 + 1),
        Comment("m0", "u", "i0", T0 + 2, "this is awful"),  # after a click: the pair leaves
        Comment("m1", "u", "i1", T0 + 3, "this is awful"),  # on its own: never a positive
        Comment("m2", "u", "i2", T0 + 4, "love it"),
        Click("c1", "v", "i0", T0 + 5),
    ])
    assert got == {("u", "i2"), ("v", "i0")}


def test_the_ledger_weighs_pairs_as_the_activity_table(encoder: Any) -> None:
    rng = random.Random(7)
    texts = ["this is awful", "love it", "ok", "terrible, not for me"]
    evs: list[Event] = [ItemPublished("p", "i", T0, "jazz")]
    for k in range(60):
        r = rng.random()
        t = T0 + k
        if r < 0.4:
            evs.append(Click(f"c{k}", "u", "i", t, dwell_ms=rng.choice([None, 200, 5000])))
        elif r < 0.7:
            evs.append(Like(f"l{k}", "u", "i", t, undo=rng.random() < 0.4))
        else:
            evs.append(Comment(f"m{k}", "u", "i", t, rng.choice(texts)))
    score = vader_sentiment()
    eng = Engine(Settings(device="cpu"), encoder, sentiment=score)
    ledger: PairLedger[str] = PairLedger()
    for ev in evs:
        eng.learn_many([ev])
        if isinstance(ev, Click):
            ledger.click("u", "i", ev.ts, ev.dwell_ms)
        elif isinstance(ev, Like):
            ledger.like("u", "i", ev.ts, ev.undo)
        elif isinstance(ev, Comment):
            ledger.comment("u", "i", ev.ts, score(ev.text))
        if ev.event_id != "p":
            assert eng.store.activity["u"].recent["i"] == ledger.pairs[("u", "i")], ev

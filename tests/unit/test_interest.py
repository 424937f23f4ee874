"""Interest vectors: decay, weights, cold start from a profile, and streaming == batch."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from socrec_online.models.interest import KIND_WEIGHT, W_PROFILE, InterestState, decay, interest_many

DAY = 86400.0
NOW = 1_700_000_000.0


def unit(*xs: float) -> torch.Tensor:
    return F.normalize(torch.tensor(xs, dtype=torch.float32), dim=0)


def test_decay_halves_per_half_life() -> None:
    d = decay(torch.tensor([0.0, DAY, 2 * DAY]), DAY)
    assert torch.allclose(d, torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))


def test_recent_behaviour_dominates_old() -> None:
    rock, jazz = unit(1, 0, 0), unit(0, 1, 0)
    emb = torch.stack([jazz, rock])
    v = interest_many(
        emb,
        torch.tensor([0, 0]),
        torch.tensor([NOW - 30 * DAY, NOW]),
        torch.ones(2),
        n_users=1,
        now=NOW,
        half_life_s=7 * DAY,
    )
    assert float(v[0] @ rock) > 0.99  # 30 days = 4+ half-lives: jazz faded to ~5%
    v_slow = interest_many(
        emb,
        torch.tensor([0, 0]),
        torch.tensor([NOW - 30 * DAY, NOW]),
        torch.ones(2),
        n_users=1,
        now=NOW,
        half_life_s=365 * DAY,
    )
    assert abs(float(v_slow[0] @ rock) - float(v_slow[0] @ jazz)) < 0.05  # slow decay: both count


def test_weights_order_and_profile_cold_start() -> None:
    assert KIND_WEIGHT["click"] < KIND_WEIGHT["like"] < KIND_WEIGHT["comment"] <= KIND_WEIGHT["profile"]
    profile, clicked = unit(1, 1, 0), unit(0, 0, 1)
    emb = torch.stack([profile, clicked, clicked])
    owner = torch.tensor([0, 1, 1])  # user 0: profile only; user 1: clicks; user 2: nothing
    ts = torch.tensor([NOW - DAY, NOW, NOW])
    w = torch.tensor([W_PROFILE, KIND_WEIGHT["click"], KIND_WEIGHT["like"]])
    v, mass = interest_many(emb, owner, ts, w, n_users=3, now=NOW, half_life_s=7 * DAY, return_mass=True)
    assert torch.allclose(v[0], profile, atol=1e-6)  # profile only -> the profile's own vector
    assert torch.allclose(v[1], clicked, atol=1e-6)
    assert torch.equal(v[2], torch.zeros(3)) and mass[2] == 0
    assert torch.allclose(v.norm(dim=1)[:2], torch.ones(2))
    assert abs(float(mass[1]) - 3.0) < 1e-9  # click + like, both happening now
    # a like moves the vector twice as far as a click would
    liked = interest_many(
        torch.stack([profile, clicked]),
        torch.tensor([0, 0]),
        torch.tensor([NOW, NOW]),
        torch.tensor([1.0, KIND_WEIGHT["like"]]),
        1,
        NOW,
        DAY,
    )
    clicked_v = interest_many(
        torch.stack([profile, clicked]),
        torch.tensor([0, 0]),
        torch.tensor([NOW, NOW]),
        torch.tensor([1.0, KIND_WEIGHT["click"]]),
        1,
        NOW,
        DAY,
    )
    assert float(liked[0] @ clicked) > float(clicked_v[0] @ clicked)


def test_streaming_state_equals_batch_formula_in_any_order() -> None:
    g = torch.Generator().manual_seed(0)
    n, users, d = 400, 37, 16
    emb = F.normalize(torch.randn(n, d, generator=g), dim=1)
    owner = torch.randint(0, users, (n,), generator=g)
    ts = NOW - torch.rand(n, generator=g, dtype=torch.float64) * 60 * DAY
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])[torch.randint(0, 4, (n,), generator=g)]
    w[::17] = -1.0  # some undos
    batch, mass = interest_many(emb, owner, ts, w, users + 3, NOW, 5 * DAY, return_mass=True)

    s = InterestState(d, 5 * DAY, capacity=4)  # tiny capacity: growth is exercised too
    perm = torch.randperm(n, generator=g)  # arrival order differs from time order
    for i in perm[:300].tolist():
        s.learn_one(int(owner[i]), emb[i], float(ts[i]), float(w[i]))
    rest = perm[300:]
    s.learn_many(owner[rest], emb[rest], ts[rest], w[rest])
    rows = torch.arange(users + 3)
    assert torch.allclose(s.vectors(rows, NOW), batch, atol=1e-5)
    assert torch.allclose(s.masses(rows, NOW), mass, rtol=1e-9, atol=1e-9)
    assert torch.allclose(s.vector(3, NOW), batch[3], atol=1e-5)
    assert not bool(s.has_history([users + 2])[0])  # beyond every learned row: no history, zero vector
    assert torch.equal(s.vectors([users + 100], NOW), torch.zeros(1, d))

    s2 = InterestState(d, 1.0)
    s2.load_state_dict(s.state_dict())
    assert torch.allclose(s2.vectors(rows, NOW), batch, atol=1e-5)


def test_undo_removes_the_behaviour() -> None:
    rock, jazz = unit(1, 0), unit(0, 1)
    s = InterestState(2, DAY)
    s.learn_one(0, rock, NOW - DAY, 1.0)
    s.learn_one(0, jazz, NOW, 2.0)
    s.learn_one(0, jazz, NOW, -2.0)  # unlike, with the like's ts
    assert torch.allclose(s.vector(0, NOW), rock, atol=1e-6)

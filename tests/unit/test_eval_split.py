"""The RecBole split: seeded, per-user 8:1:1 with RecBole's rounding, disjoint, complete."""

from __future__ import annotations

import numpy as np

from socrec_online.data.base import Interactions
from socrec_online.eval.splits import (
    _recbole_counts,
    load_split_dir,
    recbole_split,
    temporal_split,
    write_split_dir,
)


def _random_inter(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    us, its = [], []
    for u in range(40):
        n = int(rng.integers(1, 60))
        items = rng.choice(500, size=n, replace=False)
        us += [u] * n
        its += items.tolist()
    n = len(us)
    return Interactions(np.asarray(us), np.asarray(its), np.arange(n, dtype=float), np.ones(n, np.float32), np.zeros(n, np.int8))


def test_counts_follow_recbole_rounding() -> None:
    r = (0.8, 0.1, 0.1)
    assert _recbole_counts(50, r) == [40, 5, 5]
    assert _recbole_counts(10, r) == [8, 1, 1]
    assert _recbole_counts(7, r) == [5, 1, 1]  # 0.7 rounds down to 0, then made non-empty
    assert _recbole_counts(2, r) == [1, 0, 1]
    assert _recbole_counts(1, r) == [1, 0, 0]


def test_split_is_per_user_8_1_1_disjoint_and_seeded() -> None:
    inter = _random_inter()
    a = recbole_split(inter, 40, 500, seed=7)
    b = recbole_split(inter, 40, 500, seed=7)
    c = recbole_split(inter, 40, 500, seed=8)
    for part in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, part).item, getattr(b, part).item)
    assert not np.array_equal(a.test.item, c.test.item)
    assert len(a.train) + len(a.valid) + len(a.test) == len(inter)
    for u in range(40):
        n = int((inter.user == u).sum())
        got = [int((p.user == u).sum()) for p in (a.train, a.valid, a.test)]
        assert got == _recbole_counts(n, (0.8, 0.1, 0.1))
        sets = [set(p.item[p.user == u].tolist()) for p in (a.train, a.valid, a.test)]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_temporal_split_trains_on_the_past() -> None:
    inter = _random_inter()
    s = temporal_split(inter, 40, 500)
    assert s.train.ts.max() < s.valid.ts.min() <= s.valid.ts.max() < s.test.ts.min()


def test_split_dir_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from socrec_online.data import load_dataset

    ds = load_dataset("synthetic", seed=0, n_users=30, n_items=60, interactions_per_user=10)
    s = recbole_split(ds.interactions, ds.n_users, ds.n_items, seed=1)
    write_split_dir(s, ds, tmp_path)
    back = load_split_dir(tmp_path, ds)
    for part in ("train", "valid", "test"):
        assert np.array_equal(getattr(back, part).user, getattr(s, part).user)
        assert np.array_equal(getattr(back, part).item, getattr(s, part).item)

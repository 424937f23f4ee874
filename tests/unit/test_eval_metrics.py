"""Metrics against hand-computed values, history masking as RecBole does it, and paired gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from socrec_online.data.base import Interactions
from socrec_online.eval.metrics import (
    PerUser,
    evaluate_full_ranking,
    per_user_full_ranking,
    topk_metrics_from_hits,
)
from socrec_online.eval.paired import paired_difference


def _inter(pairs: list[tuple[int, int]]) -> Interactions:
    u = np.asarray([p[0] for p in pairs], np.int64)
    i = np.asarray([p[1] for p in pairs], np.int64)
    n = len(pairs)
    return Interactions(u, i, np.zeros(n), np.ones(n, np.float32), np.zeros(n, np.int8))


def test_hand_computed_recall_ndcg_hr() -> None:
    # user 0: hits at ranks 1 and 3, 3 held-out items; user 1: no hit in top 3, 1 held-out item
    hits = torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    n_pos = torch.tensor([3, 1])
    m = topk_metrics_from_hits(hits, n_pos, (3,))
    assert m["recall@3"].tolist() == pytest.approx([2 / 3, 0.0])
    assert m["hr@3"].tolist() == [1.0, 0.0]
    dcg = 1.0 + 1.0 / math.log2(4)
    idcg = 1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(4)
    assert m["ndcg@3"][0].item() == pytest.approx(dcg / idcg)
    assert m["ndcg@3"][1].item() == 0.0


def test_ideal_dcg_uses_at_most_k_positives() -> None:
    # 5 held-out items, k = 2, both top slots hit -> perfect NDCG@2, recall 2/5
    m = topk_metrics_from_hits(torch.tensor([[1, 1]], dtype=torch.bool), torch.tensor([5]), (2,))
    assert m["ndcg@2"].item() == pytest.approx(1.0)
    assert m["recall@2"].item() == pytest.approx(0.4)


def test_full_ranking_masks_history_and_averages_over_test_users() -> None:
    n_users, n_items = 3, 5
    train = _inter([(0, 0), (1, 1)])
    valid = _inter([(0, 1)])
    test = _inter([(0, 2), (1, 4)])  # user 2 has no test items: not averaged
    base = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])

    def score(users: torch.Tensor) -> torch.Tensor:
        return base.expand(users.shape[0], -1)

    m = evaluate_full_ranking(score, n_users, n_items, (train, valid), test, ks=(1, 2))
    # user 0: items 0 (train) and 1 (valid) masked -> item 2 ranks first: hit@1
    # user 1: item 1 masked -> ranking 0, 2, 3, 4: item 4 not in top 2
    assert m["n_users"] == 2
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(0.5)
    # without masking the valid item, user 0's item 2 drops to rank 2
    m2 = evaluate_full_ranking(score, n_users, n_items, (train,), test, ks=(1, 2))
    assert m2["recall@1"] == pytest.approx(0.0)
    assert m2["recall@2"] == pytest.approx(0.5)


def test_per_user_metrics_are_the_users_own_and_average_to_the_means() -> None:
    train, test = _inter([(0, 0), (1, 1)]), _inter([(0, 2), (1, 4), (2, 3)])
    base = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])

    def score(users: torch.Tensor) -> torch.Tensor:
        return base.expand(users.shape[0], -1)

    pu = per_user_full_ranking(score, 3, 5, (train,), test, ks=(2,), batch_users=2)  # two batches
    # user 0 ranks 1, 2 (item 0 masked): hit; user 1 ranks 0, 2: miss; user 2 ranks 0, 1: miss
    assert pu.users.tolist() == [0, 1, 2]
    assert pu.metrics["recall@2"].tolist() == [1.0, 0.0, 0.0]
    assert pu.means() == pytest.approx(evaluate_full_ranking(score, 3, 5, (train,), test, ks=(2,)))


def test_paired_difference_is_the_mean_per_user_gap_with_its_standard_error() -> None:
    users = np.arange(4)
    a = PerUser(users, {"ndcg@10": np.array([1.0, 0.0, 1.0, 1.0])})
    b = PerUser(users, {"ndcg@10": np.array([0.0, 0.0, 1.0, 0.0])})
    d = paired_difference(a, b, keys=("ndcg@10",))["ndcg@10"]
    # gaps 1, 0, 0, 1: mean 0.5, sample sd sqrt(1/3), SE sqrt(1/3) / 2
    assert d["diff"] == pytest.approx(0.5)
    assert d["se"] == pytest.approx(math.sqrt(1 / 3) / 2)
    assert paired_difference(b, a, keys=("ndcg@10",))["ndcg@10"]["diff"] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="same test users"):
        paired_difference(a, PerUser(np.arange(1, 5), b.metrics), keys=("ndcg@10",))

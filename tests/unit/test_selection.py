"""One picking rule on validation: the best valid NDCG@10, ties to the earliest candidate."""

from __future__ import annotations

import pytest

from socrec_online.eval.selection import best_on_valid


def test_the_best_valid_ndcg_wins_and_a_tie_goes_to_the_earliest_candidate() -> None:
    valid = {0.0: 0.20, -0.1: 0.25, 0.1: 0.25, 0.2: 0.22}
    seen: list[float] = []

    def metrics(beta: float) -> dict[str, float]:
        seen.append(beta)
        return {"ndcg@10": valid[beta], "recall@10": 1.0 - beta}

    pick, m = best_on_valid(sorted(valid, key=abs), metrics)
    assert seen == [0.0, -0.1, 0.1, 0.2]  # each candidate scored once, in the given order
    assert pick == -0.1 and m == {"ndcg@10": 0.25, "recall@10": 1.1}
    assert best_on_valid([0.1, -0.1], metrics)[0] == 0.1


def test_no_candidate_is_an_error_not_a_silent_default() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        best_on_valid([], lambda c: {"ndcg@10": 0.0})

"""streams.observe.wait_assigned: a bench phase starts only once the workers' group is stable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import observe


def _scrapes(monkeypatch: pytest.MonkeyPatch, rounds: list[dict[int, dict[str, int]]]) -> list[int]:
    """Each round: port -> {topic: partitions assigned}; the last round repeats."""
    calls: list[int] = []

    def scrape(port: int, **_kw: Any) -> dict[str, float]:
        calls.append(port)
        r = rounds[min((len(calls) - 1) // 2, len(rounds) - 1)]
        return {f'socrec_assigned_partitions{{topic="{t}"}}': float(n) for t, n in r[port].items()} | {"other": 1.0}

    monkeypatch.setattr(observe, "scrape", scrape)
    return calls


def test_waits_while_one_worker_holds_every_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _scrapes(
        monkeypatch,
        [
            {1: {}, 2: {}},  # neither has joined yet
            {1: {"clicks": 4, "likes": 4}, 2: {"clicks": 0, "likes": 0}},  # the first join took everything
            {1: {"clicks": 2, "likes": 3}, 2: {"clicks": 2, "likes": 1}},  # rebalanced
        ],
    )
    asyncio.run(observe.wait_assigned([1, 2], 4, poll=0.0))
    assert len(calls) == 6  # settled only in the third round


def test_a_group_that_never_settles_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _scrapes(monkeypatch, [{1: {"clicks": 4}, 2: {"clicks": 0}}])
    with pytest.raises(TimeoutError, match="did not settle"):
        asyncio.run(observe.wait_assigned([1, 2], 4, timeout=0.05, poll=0.01))

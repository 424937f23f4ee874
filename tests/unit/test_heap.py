"""freeze_long_lived: full collections skip the start-up heap, and nothing it froze is leaked."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from socrec_online.service.heap import freeze_long_lived


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC frees it


@pytest.fixture(autouse=True)
def _thaw() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_survivors_leave_the_collected_generations() -> None:
    alive = _Node()
    frozen = freeze_long_lived()
    assert frozen > 0
    assert gc.get_freeze_count() == frozen
    assert all(o is not alive for o in gc.get_objects(generation=2))  # a full pass no longer scans it


def test_a_frozen_cycle_dropped_later_is_collected_by_the_next_call() -> None:
    node = _Node()
    gone = weakref.ref(node)
    freeze_long_lived()
    del node
    gc.collect()
    assert gone() is not None  # frozen: the collector cannot see the dead cycle
    freeze_long_lived()  # e.g. the next restore, which replaced the engine state
    assert gone() is None

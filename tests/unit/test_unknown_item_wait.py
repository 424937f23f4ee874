"""streams.pipeline.Pipeline: a click on an item not seen yet waits for its item while the items
partition is behind, and is dead-lettered only when it is not (issue #6: nothing lost to a backlog)."""

from __future__ import annotations

import time
from typing import Any

from _engine_texts import T0

from socrec_online.events import Click
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings
from streams.origin import Origin
from streams.output import OutputProducer
from streams.pipeline import Pipeline


def pipeline(encoder: Any, behind: dict[str, bool]) -> Pipeline:
    s = Settings(device="cpu", unknown_item_grace_s=0.05, unknown_item_max_wait_s=0.4)
    p = Pipeline(s, None, {}, Engine(s, encoder), OutputProducer(s))  # type: ignore[arg-type]
    p.items_behind = lambda item, _since: behind.get(item, False)
    return p


def held_after(p: Pipeline, seconds: float) -> int:
    time.sleep(seconds)
    p._hold_unknown([], [])  # what each batch and the retry timer do
    return len(p._deferred)


def test_past_its_grace_a_click_waits_while_its_items_partition_is_behind(encoder: Any) -> None:
    behind = {"i-late": True}
    p = pipeline(encoder, behind)
    ready, _, _ = p._hold_unknown([Click("e1", "u1", "i-late", T0)], [Origin("clicks", 0, 0, b"u1", b"{}")])
    assert ready == [] and len(p._deferred) == 1
    assert held_after(p, 0.1) == 1  # past the 0.05 s grace, the partition still behind: waits
    behind["i-late"] = False  # read to its end and the item never came: a real unknown item
    assert held_after(p, 0.0) == 0


def test_the_wait_is_bounded_and_a_caught_up_partition_uses_the_grace(encoder: Any) -> None:
    p = pipeline(encoder, {"i-late": True})
    p._hold_unknown([Click("e1", "u1", "i-late", T0)], [Origin("clicks", 0, 0, b"u1", b"{}")])
    assert held_after(p, 0.5) == 0  # past unknown_item_max_wait_s: dead-lettered after all
    q = pipeline(encoder, {})
    q._hold_unknown([Click("e2", "u1", "i-typo", T0)], [Origin("clicks", 0, 1, b"u1", b"{}")])
    assert held_after(q, 0.1) == 0  # caught up: the grace alone

"""The CPU-saving paths of the service: catch-up batching, the cuda rule for int8, the fast to_dict."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from faust.types.tuples import Message

from socrec_online.events import Click, Comment, Follow, ItemPublished, Like, Profile, Query, to_dict
from socrec_online.models.text import TextEncoderConfig, quantize_on
from socrec_online.settings import Settings
from streams.agents import MIN_CATCHUP_WINDOW, CatchUp


def _window(n: int, start: int = 0) -> list[Any]:
    """Stream events as the agent sees them: only ``.message`` (a real Faust Message) is read."""
    return [
        SimpleNamespace(message=Message("clicks", 0, start + i, time.time(), 0, None, b"u", b"{}", None))
        for i in range(n)
    ]


def _catchup(highwater: int, **kw: Any) -> CatchUp:
    """``highwater``: the partition's end offset as the consumer last saw it."""
    base = {"batch_catchup_backlog": 100, "batch_catchup_max_events": 100, "batch_catchup_max_seconds": 5.0}
    return CatchUp(Settings(**{**base, **kw}), lambda tp: highwater)


def test_a_live_stream_is_never_held() -> None:
    c = _catchup(highwater=90)  # 50 records wait after this window: under the backlog threshold
    w = _window(40)
    assert not c.hold(w)
    batch, merged = c.release(w)
    assert list(batch) == w and merged == []
    assert all(ev.message.refcount == 0 for ev in w)  # no reference taken


def test_a_backlog_is_merged_up_to_max_events_with_one_reference_per_held_event() -> None:
    c = _catchup(highwater=10_000)
    first, second, third = _window(40), _window(40, 40), _window(40, 80)
    assert c.hold(first) and c.hold(second)
    assert not c.hold(third)  # 120 would pass max_events: this window closes the batch
    batch, merged = c.release(third)
    assert [ev.message.offset for ev in batch] == list(range(120))  # held windows first, in order
    assert merged == first + second
    assert all(ev.message.refcount == 1 for ev in merged)  # kept uncommitted until acked after the handler
    assert all(ev.message.refcount == 0 for ev in third)
    assert c.release(_window(1))[1] == []  # released: nothing stays held


def test_a_held_batch_is_released_after_max_seconds() -> None:
    c = _catchup(highwater=10_000, batch_catchup_max_seconds=0.05)
    assert c.hold(_window(40))
    assert c.hold(_window(5, 40))  # a held batch takes small windows too
    time.sleep(0.06)
    assert not c.hold(_window(5, 45))
    batch, merged = c.release(_window(5, 45))
    assert len(batch) == 50 and len(merged) == 45


def test_a_small_window_never_starts_a_merge() -> None:
    c = _catchup(highwater=10_000)
    assert not c.hold(_window(MIN_CATCHUP_WINDOW - 1))


def test_backlog_zero_turns_catch_up_off() -> None:
    c = _catchup(highwater=10_000, batch_catchup_backlog=0)
    assert not c.hold(_window(40))


def test_a_revoked_partition_is_not_a_reason_to_hold() -> None:
    def gone(tp: Any) -> int:
        raise RuntimeError("partition not assigned")

    c = CatchUp(Settings(batch_catchup_backlog=1), gone)
    assert not c.hold(_window(40))


def test_int8_setting_applies_on_cpu_and_is_ignored_with_a_log_line_on_cuda(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert TextEncoderConfig.from_settings(Settings(device="cpu", text_quantize=True)).quantize
    assert not TextEncoderConfig.from_settings(Settings(device="cpu", text_quantize=False)).quantize
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # only the device name is resolved
    with caplog.at_level(logging.INFO, logger="socrec_online.models.text"):
        assert not quantize_on(Settings(device="cuda", text_quantize=True))
    assert "ignored on cuda" in caplog.text


@pytest.mark.parametrize(
    "event",
    [
        Click("e1", "u1", "i1", 1.0),
        Click("e2", "u1", "i1", 1.0, dwell_ms=1500),
        Like("e3", "u1", "i1", 2.0, undo=True),
        Comment("e4", "u1", "i1", 3.0, "great"),
        Follow("e5", "u1", "u2", 4.0),
        ItemPublished("e6", "i1", 5.0, "text", tags=("a", "b")),
        ItemPublished("e7", "i2", 5.0, "text", author_id="u3"),
        Profile("e8", "u1", 6.0, "jazz"),
        Query("e9", "u1", 7.0, "jazz"),
    ],
)
def test_to_dict_round_trips_through_the_decoder(event: Any) -> None:
    """The fast flat copy still writes what DESIGN.md specifies: the decoder gives the event back."""
    import orjson

    from socrec_online.events import topic_of
    from socrec_online.service.decode import decode_event

    d = to_dict(event)
    assert decode_event(topic_of(event), orjson.dumps(d), Settings()) == event
    assert None not in d.values()  # unset optional fields are left out, not null


def test_held_events_are_delivered_without_a_next_window() -> None:
    """A drained input (or a rebalance that stopped the flow) must not strand held events."""
    import asyncio

    async def go() -> tuple[list[Any], list[Any]]:
        c = _catchup(highwater=10_000, batch_catchup_max_seconds=0.05)
        handled: list[Any] = []
        acked: list[Any] = []

        async def handler(batch: Any) -> None:
            handled.extend(batch)

        async def ack(ev: Any) -> None:
            ev.message.refcount -= 1
            acked.append(ev)

        w = _window(40)
        assert c.hold(w)
        task = asyncio.ensure_future(c.run(handler, ack, None))
        await asyncio.sleep(0.3)
        task.cancel()
        return handled, acked

    handled, acked = asyncio.run(go())
    assert [ev.message.offset for ev in handled] == list(range(40))
    assert acked == handled and all(ev.message.refcount == 0 for ev in acked)

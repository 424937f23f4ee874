"""A batch whose writes the broker never acknowledges stops the worker with an error (streams.output
``acknowledged``), instead of a worker that keeps its partitions and processes nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from socrec_online.service.engine import Engine
from socrec_online.settings import Settings
from streams.output import OutputProducer, OutputsStuck
from streams.pipeline import Pipeline


class NeverAcknowledged(OutputProducer):
    async def flush(self) -> None:
        await asyncio.Event().wait()  # a broker that takes the records and never answers


def test_unacknowledged_outputs_raise_after_the_timeout(encoder: Any) -> None:
    s = Settings(device="cpu", output_ack_timeout_s=1.0)
    p = Pipeline(s, None, {}, Engine(s, encoder), NeverAcknowledged(s))  # type: ignore[arg-type]

    async def run() -> float:
        t0 = time.monotonic()
        await p.handle([])  # the batch's outputs go on in the background
        with pytest.raises(OutputsStuck, match="not acknowledged by the broker within 1 s"):
            await asyncio.wait_for(p.quiesce(), 30.0)  # the next batch (or the timer) sees the failure
        return time.monotonic() - t0

    assert 0.9 <= asyncio.run(run()) < 30.0

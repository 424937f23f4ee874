"""The producer of the service's own outputs (recommendations, dead letters, pass-through).

Why not Faust's producer: outputs on a producer of their own never wait on the changelog
writes the worker settles (and, on the embedded broker, fences: ``streams/tables.py``) before
committing a batch. At-least-once is kept by ``flush()`` before a batch is acknowledged: a record is
delivered before the offsets of the events that caused it can be committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer

from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs

LINGER_MS = 5
T = TypeVar("T")


class OutputsStuck(RuntimeError):
    """A batch's writes were not acknowledged in time: an infrastructure fault, so the worker stops."""


async def acknowledged(writes: Awaitable[T], seconds: float, what: str) -> T:
    """``await writes``, or raise :class:`OutputsStuck` after ``seconds``.

    Why: a worker that waits for ever on a write keeps its partitions (its heartbeats go on) and
    processes nothing; one that stops hands them to the others, and a restarted one writes the
    batch again from its uncommitted offsets, so nothing is lost either way.
    """
    try:
        return await asyncio.wait_for(writes, seconds)
    except TimeoutError:
        raise OutputsStuck(f"{what} not acknowledged by the broker within {seconds:g} s") from None


class OutputProducer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[Any]] = []
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    p = AIOKafkaProducer(
                        **kafka_client_kwargs(self.settings),
                        acks="all",
                        linger_ms=LINGER_MS,
                        # no producer ids on the embedded broker; outputs are idempotent by content there
                        enable_idempotence=self.settings.broker_caps.idempotent_producer,
                        client_id=f"{self.settings.app_id}-output",
                    )
                    await p.start()
                    self._producer = p
        return self._producer

    async def send(self, topic: str, key: str | bytes | None, value: bytes) -> None:
        """Queue one record (full topic name); delivery is confirmed by ``flush()``."""
        producer = await self._ensure()
        k = key.encode("utf-8") if isinstance(key, str) else key
        self._pending.append(await producer.send(topic, value=value, key=k))

    async def send_to(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Queue one record as it is, to a chosen partition (``streams.routing``); see ``send``."""
        producer = await self._ensure()
        fut = await producer.send(
            topic, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms, headers=headers
        )
        self._pending.append(fut)

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged by the broker (raises on failure)."""
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)

    async def stop(self) -> None:
        if self._producer is not None:
            try:
                await self.flush()
            finally:
                await self._producer.stop()
                self._producer = None

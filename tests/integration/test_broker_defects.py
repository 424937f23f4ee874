"""Each embedded-broker workaround exists for a defect that broker has, and Apache Kafka has not.

``socrec_online/broker_caps.py`` names the defects; the worker works around one only where the
capability is False. Each test below runs the same client code on both brokers and asserts that
the defect shows exactly where the capabilities say it does, so a workaround that outlives its
defect (a Tansu upgrade) or a broker that gains one is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from socrec_online.broker_caps import BrokerCapabilities, capabilities
from socrec_online.brokers import ManagedBroker, make_broker

pytestmark = pytest.mark.integration

KINDS = ("kafka", "embedded")


@pytest.fixture(scope="module", params=KINDS)
def any_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[ManagedBroker, BrokerCapabilities]
]:
    folder: Path = tmp_path_factory.mktemp(f"defects-{request.param}")
    b = make_broker(request.param, data_dir=folder / "data", log_path=folder / "broker.log")
    b.start()
    try:
        yield b, capabilities(request.param)
    finally:
        b.close()


def _topic(bootstrap: str) -> str:
    name = f"defect-{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    return name


def test_list_offsets_latest_is_the_log_end_where_the_broker_says_so(any_broker) -> None:  # type: ignore[no-untyped-def]
    """Changelog fences exist because ListOffsets(latest) points inside the last record batch."""
    broker, caps = any_broker
    topic = _topic(broker.bootstrap)

    async def go() -> int:
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=200, enable_idempotence=False)
        await p.start()
        try:
            futs = [await p.send(topic, b"v%d" % i, partition=0) for i in range(5)]  # one batch
            await asyncio.gather(*futs)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            return int((await c.end_offsets([tp]))[tp])
        finally:
            await c.stop()

    end = asyncio.run(go())
    assert (end == 5) == caps.exact_log_end, f"{broker.name}: ListOffsets(latest) = {end} after 5 records"


def test_a_fetch_returns_when_data_arrives_where_the_broker_says_so(any_broker) -> None:  # type: ignore[no-untyped-def]
    """The short fetch wait exists because a fetch is held for its whole max wait."""
    broker, caps = any_broker
    topic = _topic(broker.bootstrap)

    async def go() -> float:
        tp = TopicPartition(topic, 0)
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=2000, enable_auto_commit=False)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
        await c.start()
        await p.start()
        arrived: dict[bytes, float] = {}

        async def consume() -> None:
            while True:
                for msgs in (await c.getmany(tp, timeout_ms=5000)).values():
                    for m in msgs:
                        arrived[m.value] = time.monotonic()

        try:
            c.assign([tp])
            await c.seek_to_end(tp)
            reader = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            sent: dict[bytes, float] = {}
            for i in range(5):  # at different points of whatever fetch is being held
                value = b"r%d" % i
                sent[value] = time.monotonic()
                await p.send_and_wait(topic, value, partition=0)
                await asyncio.sleep(0.7)
            deadline = time.monotonic() + 10
            while len(arrived) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            reader.cancel()
            assert arrived.keys() == sent.keys(), "records never arrived"
            return max(arrived[v] - sent[v] for v in sent)
        finally:
            await p.stop()
            await c.stop()

    slowest = asyncio.run(go())
    # Kafka answers within tens of ms; Tansu holds each fetch (0.4-0.8 s seen with a 2 s wait)
    assert (slowest < 0.3) == caps.prompt_fetch, f"{broker.name}: the slowest of 5 records took {slowest:.2f}s"


def test_joining_a_group_is_prompt_where_the_broker_says_so(any_broker) -> None:  # type: ignore[no-untyped-def]
    """The short session timeout exists because JoinGroup is held for half of it."""
    broker, caps = any_broker
    topic = _topic(broker.bootstrap)

    async def go() -> float:
        c = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
            session_timeout_ms=12000, heartbeat_interval_ms=1000,
        )  # fmt: skip
        t0 = time.monotonic()
        await c.start()
        try:
            while not c.assignment():
                await c.getmany(timeout_ms=100)
                if time.monotonic() - t0 > 30:
                    raise AssertionError("never assigned")
            return time.monotonic() - t0
        finally:
            await c.stop()

    took = asyncio.run(go())
    assert (took < 4.0) == caps.prompt_join, f"{broker.name}: joining a new group took {took:.1f}s"


def test_idempotent_and_transactional_producers_where_the_broker_says_so(any_broker) -> None:  # type: ignore[no-untyped-def]
    """Outputs are produced without producer ids on a broker that has none."""
    broker, caps = any_broker
    topic = _topic(broker.bootstrap)

    async def works(producer: AIOKafkaProducer, send: Callable[[AIOKafkaProducer], Awaitable[object]]) -> bool:
        try:
            await asyncio.wait_for(producer.start(), 10)
            await asyncio.wait_for(send(producer), 10)
            return True
        except Exception:  # noqa: BLE001 - any refusal is the defect
            return False
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    async def in_a_transaction(p: AIOKafkaProducer) -> None:
        async with p.transaction():
            await p.send(topic, b"y", partition=0)

    async def idempotent() -> bool:
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, request_timeout_ms=5000)
        return await works(p, lambda q: q.send_and_wait(topic, b"x", partition=0))

    async def transactional() -> bool:
        p = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, transactional_id=f"t-{uuid.uuid4().hex[:6]}", request_timeout_ms=5000
        )
        return await works(p, in_a_transaction)

    assert asyncio.run(idempotent()) == caps.idempotent_producer, broker.name
    assert asyncio.run(transactional()) == caps.transactions, broker.name

"""``socrec produce TOPIC`` and ``socrec tail TOPIC``: the Kafka side (aiokafka, the settings' security).

``produce`` sends each valid JSON line of a stream keyed as the contract says and reports each
invalid one (line number, dead-letter reason) without sending it; ``tail`` prints a topic's
records for people as they arrive. Checks and formats are ``socrec_online.console``'s.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from socrec_online.console import check_lines, format_record, invalid_line_report
from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs
from streams.topics import required_topics, topic_name

TOPIC_WAIT_S = 1.0
SEND_WINDOW = 1024  # sends awaited together


async def produce_lines(
    settings: Settings,
    topic: str,
    lines: Iterable[bytes],
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Send the valid lines of ``lines`` to ``topic`` (base name); 0 when every line was valid, else 1.

    The service's topics are created first when absent (with ``SOCREC_PARTITIONS``, as ``socrec
    replay`` does): a broker that auto-creates a topic on the first send gives it its own default
    partition count, which the worker then refuses. The default partitioner is murmur2, the
    worker's. Every send is awaited before the exit code is decided: a refused send fails the run.
    """
    from streams.admin import ensure_topics

    await ensure_topics(settings, required_topics(settings))
    full = topic_name(settings, topic)
    producer = AIOKafkaProducer(**kafka_client_kwargs(settings), acks="all", client_id="socrec-produce")
    await producer.start()
    pending: list[Any] = []
    sent = invalid = 0
    # Reading a line blocks the event loop; typed at a terminal, each line is delivered before the next.
    window = 1 if getattr(lines, "isatty", lambda: False)() else SEND_WINDOW
    try:
        for line in check_lines(topic, lines, settings):
            if line.error is not None:
                invalid += 1
                print(invalid_line_report(line), file=err, flush=True)
                continue
            assert line.key is not None
            pending.append(await producer.send(full, value=line.value, key=line.key.encode("utf-8")))
            sent += 1
            if len(pending) >= window:  # a long stream is not held in memory
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    print(f"sent {sent} records to {full}; {invalid} invalid lines not sent", file=out, flush=True)
    return 1 if invalid else 0


async def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    raw: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print ``topic``'s records (base name) as they arrive, until ``max_records`` or Ctrl-C.

    Reads every partition without a consumer group (nothing is committed, no group is disturbed).
    A topic that does not exist yet is waited for, not created: asking the broker for its
    metadata would auto-create it with the broker's default partition count.
    """
    full = topic_name(settings, topic)
    c = AIOKafkaConsumer(
        **kafka_client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await c.start()
    try:
        said = False
        while full not in await c.topics():
            if not said:
                print(f"waiting for topic {full} to exist", file=err, flush=True)
                said = True
            await asyncio.sleep(TOPIC_WAIT_S)
        c.subscribe([full])  # exists now; without a group every partition is this consumer's
        n = 0
        while max_records is None or n < max_records:
            batch = await c.getmany(timeout_ms=500)
            for tp, msgs in sorted(batch.items(), key=lambda kv: kv[0].partition):
                for m in msgs:
                    if raw:
                        text = bytes(m.value or b"").decode("utf-8", "backslashreplace")
                    else:
                        text = format_record(topic, tp.partition, m.offset, m.key, m.value)
                    print(text, file=out, flush=True)
                    n += 1
                    if max_records is not None and n >= max_records:
                        return 0
        return 0
    finally:
        await c.stop()

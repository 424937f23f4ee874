"""Produce a few valid socrec-online events with aiokafka (docs/topics.md is the contract).

    python examples/produce_aiokafka.py [BOOTSTRAP]     # default: $SOCREC_KAFKA_BOOTSTRAP or 127.0.0.1:19092

Keys: the user id, except on `items` (the item id). aiokafka's default partitioner is murmur2,
the one the workers co-partition their state by. Topic names take $SOCREC_TOPIC_PREFIX.
"""

import asyncio
import json
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaProducer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SOCREC_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PREFIX = os.environ.get("SOCREC_TOPIC_PREFIX", "")


def events() -> list[tuple[str, str, dict]]:
    """(topic, key, value): bob posts, alice follows him, likes and clicks his post, asks for more."""
    now = time.time()  # seconds since the epoch, not milliseconds

    def ev(**fields: object) -> dict:
        return {"event_id": uuid.uuid4().hex, "ts": now, **fields}

    return [
        (
            "items",
            "post-1",
            ev(item_id="post-1", author_id="bob", text="Live jazz trio tonight", tags=["jazz"]),
        ),
        ("profiles", "alice", ev(user_id="alice", text="I love jazz and live music")),
        ("follows", "alice", ev(user_id="alice", target_id="bob")),
        ("likes", "alice", ev(user_id="alice", item_id="post-1")),
        ("clicks", "alice", ev(user_id="alice", item_id="post-1", dwell_ms=5400)),
        ("queries", "alice", ev(user_id="alice", text="more jazz concerts")),
    ]


async def main() -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for topic, key, value in events():
            md = await producer.send_and_wait(
                PREFIX + topic, key=key.encode("utf-8"), value=json.dumps(value).encode("utf-8")
            )
            print(f"{md.topic}[{md.partition}]@{md.offset} key={key}")
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main())

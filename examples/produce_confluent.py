"""Produce a few valid socrec-online events with confluent-kafka (docs/topics.md is the contract).

    python examples/produce_confluent.py [BOOTSTRAP]    # default: $SOCREC_KAFKA_BOOTSTRAP or 127.0.0.1:19092

Keys: the user id, except on `items` (the item id). Topic names take $SOCREC_TOPIC_PREFIX.
"""

import json
import os
import sys
import time
import uuid

from confluent_kafka import Producer

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


failed: list[str] = []


def report(err, msg) -> None:
    """Delivery callback (runs inside flush): the partition and offset, or why it failed."""
    if err is not None:
        failed.append(str(err))
    else:
        print(f"{msg.topic()}[{msg.partition()}]@{msg.offset()} key={msg.key().decode()}")


def main() -> None:
    producer = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "acks": "all",
            # The workers keep each user's state on the partition murmur2(key) picks, the partitioner
            # of the Java client and of aiokafka. confluent-kafka's default (consistent_random) hashes
            # with CRC32, so the same user would land elsewhere; murmur2_random matches the Java client.
            "partitioner": "murmur2_random",
        }
    )
    for topic, key, value in events():
        producer.produce(
            PREFIX + topic,
            key=key.encode("utf-8"),
            value=json.dumps(value).encode("utf-8"),
            on_delivery=report,
        )
    if producer.flush(30) != 0 or failed:
        sys.exit(f"not all events were delivered: {failed or 'timed out after 30 s'}")


if __name__ == "__main__":
    main()

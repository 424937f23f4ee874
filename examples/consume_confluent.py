"""Read socrec-online recommendations with confluent-kafka: user, kind, items with reasons, rec_id.

    python examples/consume_confluent.py [BOOTSTRAP] [--max N]  # default: $SOCREC_KAFKA_BOOTSTRAP

A consumer group (offsets committed) that starts at the oldest record the first time. Delivery
is at-least-once: after a worker crash the same answer can arrive again with the same rec_id,
so this drops a rec_id it has already printed. Unknown fields are ignored (docs/topics.md).
"""

import argparse
import json
import os

from confluent_kafka import Consumer

PREFIX = os.environ.get("SOCREC_TOPIC_PREFIX", "")


def show(rec: dict) -> None:
    print(
        f"{rec['user_id']} {rec['kind']} rec_id={rec.get('rec_id')} model={rec['model_version']}", flush=True
    )
    for i, item in enumerate(rec["items"], 1):
        print(f"  {i}. {item['id']} {item['score']:.3f} {item['reason']}", flush=True)


def main(bootstrap: str, limit: int | None) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "socrec-example-confluent",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([PREFIX + "recommendations"])
    seen: set[str] = set()  # bound it (e.g. an LRU) in a long-running consumer
    try:
        while limit is None or len(seen) < limit:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}")
                continue
            rec = json.loads(msg.value())
            if rec.get("rec_id") in seen:
                continue
            seen.add(rec.get("rec_id"))
            show(rec)
    finally:
        consumer.close()  # leaves the group now and commits what was read


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "bootstrap", nargs="?", default=os.environ.get("SOCREC_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    ap.add_argument("--max", type=int, default=None, help="stop after N distinct recommendations")
    args = ap.parse_args()
    try:
        main(args.bootstrap, args.max)
    except KeyboardInterrupt:
        pass

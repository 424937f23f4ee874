"""Read socrec-online recommendations with aiokafka: user, kind, items with reasons, rec_id.

    python examples/consume_aiokafka.py [BOOTSTRAP] [--max N]   # default: $SOCREC_KAFKA_BOOTSTRAP

A consumer group (offsets committed) that starts at the oldest record the first time. Delivery
is at-least-once: after a worker crash the same answer can arrive again with the same rec_id,
so this drops a rec_id it has already printed. Unknown fields are ignored (docs/topics.md).
"""

import argparse
import asyncio
import json
import os

from aiokafka import AIOKafkaConsumer

PREFIX = os.environ.get("SOCREC_TOPIC_PREFIX", "")


def show(rec: dict) -> None:
    print(
        f"{rec['user_id']} {rec['kind']} rec_id={rec.get('rec_id')} model={rec['model_version']}", flush=True
    )
    for i, item in enumerate(rec["items"], 1):
        print(f"  {i}. {item['id']} {item['score']:.3f} {item['reason']}", flush=True)


async def main(bootstrap: str, limit: int | None) -> None:
    consumer = AIOKafkaConsumer(
        PREFIX + "recommendations",
        bootstrap_servers=bootstrap,
        group_id="socrec-example-aiokafka",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: set[str] = set()  # bound it (e.g. an LRU) in a long-running consumer
    try:
        async for msg in consumer:
            rec = json.loads(msg.value)
            if rec.get("rec_id") in seen:
                continue
            seen.add(rec.get("rec_id"))
            show(rec)
            if limit is not None and len(seen) >= limit:
                break
    finally:
        await consumer.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "bootstrap", nargs="?", default=os.environ.get("SOCREC_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    ap.add_argument("--max", type=int, default=None, help="stop after N distinct recommendations")
    args = ap.parse_args()
    try:
        asyncio.run(main(args.bootstrap, args.max))
    except KeyboardInterrupt:
        pass

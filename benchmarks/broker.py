"""``python -m benchmarks.broker``: how the embedded broker's request cost grows with what a
partition holds.

Why: a one-hour ``socrec bench reliability`` at 100 events/s fell behind after ~13 minutes while the
worker's own CPU dropped and the broker's rose past one core. This measures the requests a worker
repeats (a fetch near the end of a partition, ListOffsets) on one partition as small batches pile
up in it (a live producer writes a batch of a few records at a time), with no worker involved,
and the broker's CPU while a consumer waits at the end of the partition (fetches that return
nothing). Prints one JSON line per round, then whether the broker can drop consumed records
(DeleteRecords): if it could, a live run could keep its partitions short.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

from socrec_online.broker import EmbeddedBroker
from streams.app import EMBEDDED_FETCH_MAX_WAIT_MS

IDLE_SECONDS = 3.0


async def _idle_fetch_cores(bootstrap: str, tp: TopicPartition, broker: psutil.Process) -> float:
    """The broker's CPU (cores) while one consumer waits at the end of ``tp`` with the worker's fetch wait."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=EMBEDDED_FETCH_MAX_WAIT_MS, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.getmany(tp, timeout_ms=200)
        c0, t0 = sum(broker.cpu_times()[:2]), time.monotonic()
        while time.monotonic() - t0 < IDLE_SECONDS:
            await consumer.getmany(tp, timeout_ms=100)
        return (sum(broker.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
    finally:
        await consumer.stop()


async def _delete_records(bootstrap: str, tp: TopicPartition, before: int) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        low = await admin.delete_records({tp: RecordsToDelete(before_offset=before)}, timeout_ms=5000)
        return f"accepted: log start {low.get(tp)}"
    except Exception as exc:  # noqa: BLE001 - the answer is what this reports
        return f"refused: {exc!r}"
    finally:
        await admin.close()


async def _measure(
    bootstrap: str, rounds: int, batches_per_round: int, records_per_batch: int, broker_pid: int | None
) -> list[dict[str, float | str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("grow", 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        fetch_max_wait_ms=20,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4096,
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition("grow", 0)
    consumer.assign([tp])
    out = []
    records = 0
    try:
        for _ in range(rounds):
            for _ in range(batches_per_round):
                batch = producer.create_batch()
                for _ in range(records_per_batch):
                    batch.append(key=None, value=b"x" * 300, timestamp=None)
                batch.close()
                await (await producer.send_batch(batch, "grow", partition=0))  # one batch per request
            records += batches_per_round * records_per_batch
            t = time.monotonic()
            for _ in range(30):
                await consumer.end_offsets([tp])
            list_ms = (time.monotonic() - t) / 30 * 1000
            t = time.monotonic()
            for k in range(20):
                consumer.seek(tp, records - 10 - k)
                await consumer.getmany(tp, timeout_ms=1000)
            fetch_ms = (time.monotonic() - t) / 20 * 1000
            row: dict[str, float | str] = {
                "batches": records // records_per_batch,
                "records": records,
                "list_offsets_ms": round(list_ms, 2),
                "fetch_near_end_ms": round(fetch_ms, 2),
            }
            if broker_pid is not None:
                row["idle_fetch_broker_cores"] = round(
                    await _idle_fetch_cores(bootstrap, tp, psutil.Process(broker_pid)), 3
                )
            print(json.dumps(row), flush=True)
            out.append(row)
        print(json.dumps({"delete_records": await _delete_records(bootstrap, tp, records // 2)}), flush=True)
    finally:
        await consumer.stop()
        await producer.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batches-per-round", type=int, default=2000)
    p.add_argument("--records-per-batch", type=int, default=4)
    a = p.parse_args()
    with EmbeddedBroker() as broker:
        asyncio.run(_measure(broker.bootstrap, a.rounds, a.batches_per_round, a.records_per_batch, broker.pid))


if __name__ == "__main__":
    main()

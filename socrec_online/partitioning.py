"""Which partition owns a key: Kafka's default (murmur2) partitioner, without a Kafka client.

The worker's tables are co-partitioned with its inputs by this function (Faust writes table keys
through aiokafka's ``DefaultPartitioner``, the Java client's default too), so the partition an
event must be read from to land next to its owner's state is ``owner_partition(key_of(event))``.
Producers on another partitioner (confluent-kafka's default ``consistent_random`` is CRC32) put
records elsewhere; ``streams.routing`` moves them. Pure Python, so the library stays client-free.
"""

from __future__ import annotations

import functools

__all__ = ["murmur2", "owner_partition"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data`` (as ``org.apache.kafka.common.utils.Utils.murmur2``), unsigned."""
    n = len(data)
    h = (_SEED ^ n) & _MASK
    end = n - n % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = n % 4
    if extra == 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=65536)
def owner_partition(key: str | bytes, partitions: int) -> int:
    """The partition the default partitioner gives ``key`` (a str is UTF-8 encoded) among ``partitions``."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions

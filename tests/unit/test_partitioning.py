"""socrec_online.partitioning agrees with aiokafka's default partitioner (what Faust writes tables with)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from socrec_online.partitioning import murmur2, owner_partition


def test_murmur2_and_owner_partition_match_aiokafka_for_every_length_and_non_ascii() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(40) for _ in range(5)]
    keys += [b"u1", "ü-ß-用户".encode(), b"item-00042"]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF, key
        for n in (1, 3, 4, 7, 12):
            parts = list(range(n))
            assert owner_partition(key, n) == DefaultPartitioner()(key, parts, parts), (key, n)
    assert owner_partition("u1", 4) == owner_partition(b"u1", 4)

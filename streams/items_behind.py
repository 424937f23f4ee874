"""Is the item of a held interaction still on its way to this worker? The wait of an interaction
held for its item (``streams.pipeline``) goes on while it is."""

from __future__ import annotations

from collections.abc import Callable

import faust
from faust.types import TP

from socrec_online.partitioning import owner_partition
from socrec_online.settings import Settings
from streams.remote_items import RemoteItems
from streams.topics import topic_name


def items_behind(app: faust.App, settings: Settings, remote: RemoteItems | None = None) -> Callable[[str, float], bool]:
    """``behind(item_id, since)``: True while the item of a click held since ``since`` (monotonic)
    may still arrive: its items partition is assigned to this worker and still has records the
    agent was not handed (or its end is not known yet); or, another worker's partition, ``remote``
    says it is on its way through the shared-state mirror (``streams.remote_items``).

    Why: a click on an item this worker has not seen is held for its item's event and dead-lettered
    as unknown_item after ``unknown_item_grace_s``; after a restart with a backlog the items
    partition can be further behind than that (measured: 286 of 5,000 events in a 5-kill bench),
    and under load (a start-up) an item another worker owns can take longer than that to come
    through the mirror. While it may still come, the wait goes on (up to
    ``unknown_item_max_wait_s``). Without ``remote`` (no mirror) another worker's partition
    cannot be judged here, and the grace rules.
    """
    name = topic_name(settings, "items")

    def behind(item_id: str, since: float) -> bool:
        consumer = app._consumer
        if consumer is None:
            return False
        p = owner_partition(item_id, settings.partitions)  # the producers' murmur2 partition
        tp = TP(name, p)
        try:
            mine = tp in consumer.assignment()
            end = consumer.highwater(tp) if mine else None
        except Exception:  # noqa: BLE001 - rebalancing: nothing to judge by, the grace rules
            return False
        if not mine:
            return remote is not None and remote.on_way(p, item_id, since)
        nxt = getattr(consumer, "next_delivery", lambda _tp: None)(tp)
        return end is None or nxt is None or nxt < end

    return behind

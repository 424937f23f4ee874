"""A recommendation's stable id, so consumers can drop the duplicates at-least-once delivery makes.

The worker commits input offsets only after its outputs are acknowledged, so a crash between the
two replays the batch and publishes its lists again. Such a re-published list answers the same
event for the same user, so its id is derived from exactly that:

    rec_id = hex(blake2b(source_event_id | user_id | kind, 16 bytes))

A list with no source event (asked for directly) is identified by its content instead: the same
items for the same user and kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["rec_id"]

_SEP = "\x1f"


def rec_id(source_event_id: str | None, user_id: str, kind: str, item_ids: Iterable[str] = ()) -> str:
    parts = [source_event_id, user_id, kind] if source_event_id is not None else ["", user_id, kind, *item_ids]
    return hashlib.blake2b(_SEP.join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

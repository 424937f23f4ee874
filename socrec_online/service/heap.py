"""Keep full garbage collections off the hot path of a long-running process.

A worker holds ~480,000 GC-tracked objects that live as long as it does (torch, transformers,
Faust, the rebuilt engine state), and CPython's full (generation 2) collection walks all of
them: such a pass takes a hundred milliseconds or more, stalling every event in flight. :func:`freeze_long_lived` moves what is
alive after a start or a rebuild into the permanent generation (``gc.freeze``): later passes scan
only newer objects, and objects are still freed by reference counting.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Collect everything once (including what an earlier call froze), then freeze the survivors.

    Call it where a pause is already expected (start-up, a restore); returns the objects frozen.
    """
    gc.unfreeze()  # state a rebuild dropped may hold cycles: they are collected now, not leaked
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

"""Hot swaps during the latency phase of ``socrec bench throughput``: latency across a model swap.

While the worker serves a snapshot, every ``SWAP_EVERY_S`` a copy of the served version is written
under a new version name and announced on ``model-updates``, as the trainer announces a fine-tune;
the worker loads and builds it while it serves and swaps it in. A swap's window runs from its
announcement to ``SWAP_TAIL_S`` after the first recommendation carrying the new version, and the
bench reports the latency percentiles of the events sent inside the windows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socrec_online.settings import Settings
from socrec_online.snapshot import current, new_version

SWAP_EVERY_S = 5.0
SWAP_TAIL_S = 1.0


def clone_version(root: Path, version: str) -> str:
    """Copy ``root/version`` to a new version directory (same weights, its own name); returns the name."""
    name = new_version(root)
    tmp = root / f".{name}.tmp"
    shutil.copytree(root / version, tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["version"] = name
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    tmp.rename(root / name)
    return name


@dataclass
class Swaps:
    """The swaps announced in one phase and when each first served."""

    root: Path
    announced: dict[str, float] = field(default_factory=dict)  # version -> wall time announced
    served_at: dict[str, float] = field(default_factory=dict)  # version -> first recommendation with it

    def seen(self, version: str, published: float) -> None:
        if version in self.announced and version not in self.served_at:
            self.served_at[version] = published

    async def run(self, settings: Settings, every_s: float = SWAP_EVERY_S) -> None:
        from streams.model_updates import announce

        while True:
            await asyncio.sleep(every_s)
            served = current(self.root)
            if served is None:
                return  # zero-shot: nothing to swap
            version = await asyncio.to_thread(clone_version, self.root, served)
            self.announced[version] = time.time()
            await announce(settings, version, str(self.root / version))

    def windows(self) -> list[tuple[float, float]]:
        return [(t, self.served_at[v] + SWAP_TAIL_S) for v, t in self.announced.items() if v in self.served_at]

    def split(self, sent_at: list[float], latencies: list[float]) -> tuple[list[float], list[float]]:
        """Latencies of the events sent inside a swap window, and of the others."""
        wins = self.windows()
        inside: list[float] = []
        outside: list[float] = []
        for ts, lat in zip(sent_at, latencies, strict=True):
            (inside if any(a <= ts <= b for a, b in wins) else outside).append(lat)
        return inside, outside

    def report(self) -> dict[str, Any]:
        return {
            "announced": len(self.announced),
            "served": len(self.served_at),
            "announce_to_serving_s": [
                round(self.served_at[v] - t, 3) for v, t in self.announced.items() if v in self.served_at
            ],
        }

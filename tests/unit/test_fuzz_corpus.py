"""Every input in the fuzz corpus (the hostile seeds and whatever the fuzzer found) through the
service path again: seeds end as their named outcome, nothing raises, a restart agrees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuzz.service_path import ServicePath, path_settings

CORPUS = Path(__file__).parent / "fuzz_corpus"


def test_the_corpus_replays_without_a_crash_and_seeds_end_as_expected(encoder: Any) -> None:
    files = sorted(CORPUS.iterdir())
    seeds = [f for f in files if f.name.startswith("seed-")]
    assert len(seeds) >= 62  # the sixty hostile records, their item and a good click
    path = ServicePath(path_settings(), encoder)
    got = {f.name: path.feed(f.read_bytes()) for f in files}
    wrong = {n: outcome for n, outcome in got.items() if n.startswith("seed-") and not n.endswith(outcome)}
    assert not wrong, wrong
    path.check_restore()  # the far-future events (ts 4e9) among them did not move the clock past now

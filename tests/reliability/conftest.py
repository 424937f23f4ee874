"""Reliability fixtures: a real broker (Apache Kafka unless SOCREC_BROKER=embedded) and real worker
processes, watched from outside.

The scenarios themselves live in ``benchmarks/`` (the rig in ``benchmarks/harness/rig.py``; ``socrec bench
reliability`` runs their long variants); the tests here run short variants and assert on what they measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.harness.rig import Rig
from socrec_online.brokers import ManagedBroker, make_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def rel_broker(tmp_path_factory: pytest.TempPathFactory, broker_kind: str) -> Iterator[ManagedBroker]:
    """The reliability tests' broker on a free loopback port (data on disk, removed at the end)."""
    folder = tmp_path_factory.mktemp("rel-broker")
    b = make_broker(broker_kind, data_dir=folder / "data", log_path=folder / "broker.log")  # type: ignore[arg-type]
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def rig_factory(
    rel_broker: ManagedBroker, tiny_text_model_path: Path, tmp_path: Path
) -> Iterator[Callable[..., Rig]]:
    """Make rigs (one worker each, own topic prefix and group); every worker is stopped after the test."""
    made: list[Rig] = []

    def make(prefix: str, **kw: object) -> Rig:
        kw.setdefault("text_model", tiny_text_model_path)
        kw.setdefault("broker_kind", rel_broker.kind)
        rig = Rig(rel_broker.bootstrap, tmp_path / prefix.strip("."), prefix, **kw)  # type: ignore[arg-type]
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.stop()

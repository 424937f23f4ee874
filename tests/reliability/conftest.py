"""Reliability fixtures: a real embedded broker and real worker processes, watched from outside.

The scenarios themselves live in ``streams/bench_reliability.py`` (``socrec bench reliability``
runs their long variants); the tests here run short variants and assert on what they measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from socrec_online.broker import EmbeddedBroker
from streams.bench_reliability import Rig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def rel_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker on a free loopback port, shared by the reliability tests."""
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("rel-broker") / "broker.log") as b:
        yield b


@pytest.fixture
def rig_factory(
    rel_broker: EmbeddedBroker, tiny_text_model_path: Path, tmp_path: Path
) -> Iterator[Callable[..., Rig]]:
    """Make rigs (one worker each, own topic prefix and group); every worker is stopped after the test."""
    made: list[Rig] = []

    def make(prefix: str, **kw: object) -> Rig:
        kw.setdefault("text_model", tiny_text_model_path)
        rig = Rig(rel_broker.bootstrap, tmp_path / prefix.strip("."), prefix, **kw)  # type: ignore[arg-type]
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.stop()

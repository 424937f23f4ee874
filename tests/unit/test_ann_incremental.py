"""The ANN index follows item edits and evictions without a rebuild, and never returns a stale entry."""

from __future__ import annotations

from typing import Any

import numpy as np
from _engine_texts import T0, TEXTS

from socrec_online.events import ItemPublished
from socrec_online.service.ann import AnnIndex
from socrec_online.service.engine import Engine
from socrec_online.settings import Settings

WORDS = ["river", "market", "engine", "poem", "winter", "orbit", "harvest", "violin", "glacier", "dance", "ledger"]
N = 60


def text(i: int, v: int = 0) -> str:
    return f"{TEXTS[i % 8]} {WORDS[(i + 3 * v) % 11]} {WORDS[(i * 7 + v) % 11]} number {i} take {v}"


def engine(encoder: Any) -> Engine:
    eng = Engine(Settings(device="cpu", ann_threshold=20, user_ttl_s=0.0, item_retention_s=0.0), encoder)
    eng.learn_many([ItemPublished(f"p{i}", f"i{i}", T0 + i, text(i)) for i in range(N)])
    return eng


def same_as_fresh(eng: Engine, k: int = 10) -> None:
    """Every item vector as a query: the incremental index answers what one built from scratch does."""
    fresh = AnnIndex(eng.store)
    fresh.add()
    live = np.asarray(eng.items.rows(sorted(eng.item_state)), np.int64)
    q = eng.store.item_emb[live].numpy()
    got, want = eng.ann.search(q, k), fresh.search(q, k)
    assert set(got.ravel().tolist()) <= set(live.tolist())  # no tombstone, no evicted item
    assert (got == want).all()


def test_an_edit_above_the_threshold_adds_an_entry_instead_of_rebuilding(encoder: Any) -> None:
    eng = engine(encoder)
    assert eng.ann.built and eng.ann.rebuilds == 1 and eng.ann.n == N
    old = eng.store.item_emb[eng.items.row("i5")].clone()
    eng.learn_many([ItemPublished("edit", "i5", T0 + 100, "an entirely new text about glaciers and violins")])
    assert eng.ann.rebuilds == 1 and eng.ann.tombstones == 1 and eng.ann.n == N
    assert not np.allclose(old.numpy(), eng.store.item_emb[eng.items.row("i5")].numpy())
    same_as_fresh(eng)


def test_evicted_items_are_never_returned(encoder: Any) -> None:
    eng = engine(encoder)
    gone = [f"i{i}" for i in range(0, N, 3)]
    eng.upsert({"items": dict.fromkeys(gone)})  # the owner's deletions, read from its changelog
    assert eng.ann.rebuilds == 1 and eng.ann.n == N - len(gone)
    same_as_fresh(eng)
    dead = set(eng.items.rows(gone))
    q = eng.store.item_emb[sorted(dead)].numpy()  # their own vectors: their entries would come first
    assert not dead & set(eng.ann.search(q, 5).ravel().tolist())


def test_tombstones_past_half_the_index_rebuild_it_once(encoder: Any) -> None:
    eng = engine(encoder)
    for v in range(1, 3):  # every item edited twice: 2N tombstones over time, about 2 rebuilds, not 2N
        eng.learn_many([ItemPublished(f"e{v}-{i}", f"i{i}", T0 + 100 * v + i, text(i, v)) for i in range(N)])
    assert 2 <= eng.ann.rebuilds <= 3 and eng.ann.tombstones <= eng.ann.n
    same_as_fresh(eng)


def test_the_index_goes_when_evictions_bring_the_catalogue_under_the_threshold(encoder: Any) -> None:
    eng = engine(encoder)
    eng.upsert({"items": {f"i{i}": None for i in range(45)}})
    assert not eng.ann.built  # 15 live items: every one is a candidate, as in a fresh engine

"""Dataset loaders and the typed event stream they replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from socrec_online.data import DataFormatError, load_dataset
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import (
    Click,
    Comment,
    Follow,
    ItemPublished,
    Like,
    Profile,
    key_of,
    to_dict,
    topic_of,
)

SMALL = SyntheticConfig(n_users=60, n_items=120, interactions_per_user=10, seed=3)


def test_synthetic_is_seeded_and_reproducible() -> None:
    a, b = generate(SMALL), generate(SMALL)
    assert a.item_text == b.item_text
    assert np.array_equal(a.interactions.item, b.interactions.item)
    c = generate(SyntheticConfig(**{**SMALL.__dict__, "seed": 4}))
    assert not np.array_equal(a.interactions.item, c.interactions.item)


def test_synthetic_is_homophilous_and_topical() -> None:
    ds = generate(SMALL)
    theta = ds.meta["theta"]
    sim = theta @ theta.T
    followed = sim[ds.social_src, ds.social_dst].mean()
    rng = np.random.default_rng(0)
    random_pairs = sim[rng.integers(0, 60, 2000), rng.integers(0, 60, 2000)].mean()
    assert followed > 1.5 * random_pairs
    topic = ds.meta["item_topic"]
    pref = theta[ds.interactions.user, topic[ds.interactions.item]].mean()
    assert pref > 2.0 / len(ds.meta["topics"])  # users engage with their topics far above chance


def test_synthetic_comment_sentiment_follows_taste() -> None:
    ds = generate(SyntheticConfig(n_users=100, n_items=200, interactions_per_user=20, comment_share=0.5, seed=1))
    pos = [c for c in ds.comments if c.sentiment_truth and c.sentiment_truth > 0]
    neg = [c for c in ds.comments if c.sentiment_truth and c.sentiment_truth < 0]
    assert pos and neg
    assert all(isinstance(c.text, str) for c in ds.comments)


def test_events_are_causal_and_deterministic() -> None:
    ds = generate(SMALL)
    evs = list(ds.events())
    assert [e.event_id for e in evs] == [e.event_id for e in ds.events()]
    assert len({e.event_id for e in evs}) == len(evs)
    published: set[str] = set()
    for e in evs:
        if isinstance(e, ItemPublished):
            published.add(e.item_id)
        elif isinstance(e, (Click, Like, Comment)):
            assert e.item_id in published, "an interaction must never precede its item"
    kinds = {type(e) for e in evs}
    assert {ItemPublished, Follow, Profile, Click, Like, Comment} <= kinds
    assert len(list(ds.events(limit=25))) == 25


def test_event_json_shape_matches_design() -> None:
    item = ItemPublished("e1", "i1", 1.0, "text", None, ("a",))
    assert to_dict(item) == {"event_id": "e1", "item_id": "i1", "ts": 1.0, "text": "text", "tags": ["a"]}
    assert key_of(item) == "i1" and topic_of(item) == "items"
    click = Click("e2", "u1", "i1", 2.0)
    assert "dwell_ms" not in to_dict(click) and key_of(click) == "u1"
    assert to_dict(Follow("e3", "u1", "u2", 3.0)) == {
        "event_id": "e3", "user_id": "u1", "target_id": "u2", "ts": 3.0, "undo": False,
    }


def _write(p: Path, text: str) -> None:
    p.write_text(text, encoding="utf-8")


def test_bring_your_own_files(tmp_path: Path) -> None:
    _write(tmp_path / "items.tsv", "item_id\ttext\nA\tjazz quartet live\nB\tcycling news\n")
    _write(tmp_path / "interactions.tsv", "user_id\titem_id\tts\tweight\nx\tA\t10\t2\ny\tB\t11\t\n")
    _write(tmp_path / "social.tsv", "user_id\ttarget_id\nx\ty\ny\ty\n")
    ds = load_dataset("files", tmp_path)
    assert ds.summary()["users"] == 2 and ds.n_items == 2
    assert ds.interactions.weight.tolist() == [2.0, 1.0]
    assert ds.social_src.tolist() == [0] and ds.social_dst.tolist() == [1]  # self-follow dropped


def test_bring_your_own_files_errors_name_the_line(tmp_path: Path) -> None:
    _write(tmp_path / "items.tsv", "item_id\ttext\nA\tjazz\n")
    _write(tmp_path / "interactions.tsv", "user_id\titem_id\tts\nx\tZ\t10\n")
    with pytest.raises(DataFormatError, match=r"interactions.tsv:2: item 'Z'"):
        load_dataset("files", tmp_path)
    with pytest.raises(DataFormatError, match="needs --data-dir"):
        load_dataset("files")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope")

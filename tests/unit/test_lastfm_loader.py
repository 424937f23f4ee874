"""The LastFM loader reproduces the published HetRec 2011 counts (skipped without the data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

LASTFM = os.environ.get("SOCREC_LASTFM_DIR")
pytestmark = [
    pytest.mark.lastfm,
    pytest.mark.skipif(not LASTFM or not Path(LASTFM).is_dir(), reason="SOCREC_LASTFM_DIR unset or missing"),
]


def test_published_counts() -> None:
    from socrec_online.data import load_dataset

    ds = load_dataset("lastfm", LASTFM)
    assert ds.n_users == 1892
    assert ds.n_items == 17632
    assert len(ds.interactions) == 92834
    assert ds.social_src.shape[0] == 25434
    pairs = set(zip(ds.interactions.user.tolist(), ds.interactions.item.tolist(), strict=True))
    assert len(pairs) == 92834  # one row per user-artist pair
    assert np.all(ds.interactions.weight > 0)  # listening counts
    assert all(t for t in ds.item_text)  # every artist has text (at least its name)

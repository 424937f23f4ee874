"""Cold start (issue #5, Must 2): the bench withholds exactly what it says, serves every case with
the real engine, and on the synthetic benchmark a profile alone beats the popularity fallback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.coldstart import GROUPS, ColdStartConfig, cold_split, run_coldstart
from benchmarks.engine_eval import events_of
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import Click, Comment, Follow, Like, Profile

SMALL = {"n_users": 90, "n_items": 160}


@pytest.fixture(scope="module")
def encoder(tiny_text_model_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path), cache_size=10_000))


def test_cold_split_withholds_exactly_each_cases_history() -> None:
    ds = generate(SyntheticConfig(seed=5, **SMALL))
    cfg = ColdStartConfig(seed=5, users_per_group=8, synthetic=SMALL)
    sp = cold_split(ds, cfg)
    g = {k: set(v.tolist()) for k, v in sp.groups.items()}
    assert all(len(v) == 8 for v in g.values())
    assert not (g["cold_users_profile"] & g["cold_users_follows"]) and not (
        g["cold_users_profile_follows"] & (g["cold_users_profile"] | g["cold_users_follows"])
    )
    cold_users = {ds.users.id(u) for v in g.values() for u in v}
    cold_items = set(ds.items.ids(sp.cold_items))
    evs = events_of(ds, sp.replay)
    engaged = [e for e in evs if isinstance(e, Click | Like | Comment)]
    assert engaged and not any(e.user_id in cold_users or e.item_id in cold_items for e in engaged)
    assert sp.t_cut is not None and all(e.ts < sp.t_cut for e in engaged)
    follows_of = {e.user_id for e in evs if isinstance(e, Follow)}
    profiles_of = {e.user_id for e in evs if isinstance(e, Profile)}
    ids = {k: {ds.users.id(u) for u in v} for k, v in g.items()}
    assert ids["cold_users_profile"] <= profiles_of and not ids["cold_users_profile"] & follows_of
    assert ids["cold_users_follows"] <= follows_of and not ids["cold_users_follows"] & profiles_of
    assert ids["cold_users_profile_follows"] <= profiles_of & follows_of
    published = {e.item_id for e in evs if type(e).__name__ == "ItemPublished"}
    assert cold_items <= published  # cold items have their text, and nothing else
    # targets: only after the cut, only items already published then
    assert np.all(sp.heldout.ts >= sp.t_cut)
    assert ds.item_ts is not None and np.all(ds.item_ts[sp.heldout.item] <= sp.t_cut)


def test_untimed_data_uses_the_whole_held_out_history() -> None:
    ds = generate(SyntheticConfig(seed=6, **SMALL))
    inter = dataclasses.replace(ds.interactions, ts=np.zeros(len(ds.interactions)))
    ds = dataclasses.replace(ds, interactions=inter, timed=None, comments=[], profiles={})
    sp = cold_split(ds, ColdStartConfig(seed=6, users_per_group=10))
    assert sp.t_cut is None and sp.replay.interaction_ts is not None
    assert sp.groups["cold_users_profile"].size == 0  # no profiles: that case cannot be measured
    cold = sp.groups["cold_users_follows"]
    assert cold.size == 10
    n_all = int(np.isin(ds.interactions.user, cold).sum())
    assert int(np.isin(sp.heldout.user, cold).sum()) == n_all  # every one of their interactions is a target


def test_bench_serves_every_case_with_the_engine_and_writes_json(encoder: Any, tmp_path: Path) -> None:
    from benchmarks.coldstart import print_table, write_json

    res = run_coldstart(ColdStartConfig(seed=3, users_per_group=10, synthetic=SMALL), encoder=encoder, progress=False)
    assert set(res["groups"]) == set(GROUPS) and res["model"] == "zero-shot"
    for name, row in res["groups"].items():
        assert row["n_users"] > 0, name
        assert 0.0 <= row["engine"]["recall@10"] <= 1.0
        assert ("random_recall@10" in row) == name.startswith("cold_items")
    # among cold items only, every pick is a cold item: a real ranking of items nobody touched
    assert res["groups"]["cold_items_among_cold"]["n_cold_items"] > 0
    assert res["replay"]["rejected"] == 0
    write_json(res, tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["groups"].keys() == res["groups"].keys()
    print_table(res)


def test_cli_registers_the_nl_benches() -> None:
    from typer.testing import CliRunner

    from streams.cli import app

    out = CliRunner().invoke(app, ["bench", "--help"])
    assert out.exit_code == 0 and "coldstart" in out.output and "sentiment" in out.output


@pytest.mark.slow
def test_profile_only_users_beat_popularity_on_synthetic(minilm_path: Path) -> None:
    """With the real text tower and the bench defaults, over three seeds: a profile alone gives cold
    users a better Recall@10 than the stronger popularity fallback, and cold items rank well above
    random among themselves.

    What is asserted is the ratio of the means over the seeds (as docs/quality.md reports it), above
    1: one seed's ratio is noisy (popularity hits 1 to 3 of the 50 cold users), and the >= 2x
    target holds only on average over many seeds, not at each (docs/quality.md), so it is not
    claimed here."""
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    enc = TextEncoder(TextEncoderConfig(model_path=str(minilm_path)))
    engine, fallback, cold_engine, cold_random = [], [], [], []
    for seed in (1, 2, 3):
        res = run_coldstart(ColdStartConfig(seed=seed), encoder=enc, progress=False)
        row = res["groups"]["cold_users_profile"]
        engine.append(row["engine"]["recall@10"])
        fallback.append(max(row["popularity"]["recall@10"], row["popularity_recent"]["recall@10"]))
        cold = res["groups"]["cold_items_among_cold"]
        cold_engine.append(cold["engine"]["recall@10"])
        cold_random.append(cold["random_recall@10"])
    assert np.mean(engine) > np.mean(fallback) > 0, (engine, fallback)
    assert np.mean(cold_engine) >= 2 * np.mean(cold_random) > 0, (cold_engine, cold_random)

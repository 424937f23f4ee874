"""``socrec bench quality`` writes the DESIGN.md JSON keys and the gaps to the graph alone;
``--split-dir`` evaluates on that split."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from socrec_online.data import load_dataset
from socrec_online.eval.splits import recbole_split, write_split_dir
from streams.cli import app


def test_bench_quality_json_and_external_split(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = load_dataset("synthetic", seed=2020)
    split = recbole_split(ds.interactions, ds.n_users, ds.n_items, seed=5)
    write_split_dir(split, ds, tmp_path / "split")
    out = tmp_path / "q.json"
    r = CliRunner().invoke(
        app,
        ["bench", "quality", "--dataset", "synthetic", "--models", "popularity,lightgcn", "--epochs", "2",
         "--dim", "8,16", "--tau", "0.1,0.3", "--split-dir", str(tmp_path / "split"), "--out", str(out),
         "--no-progress"],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert {"dataset", "protocol", "seed", "models"} <= set(res)
    assert res["protocol"] == "split-dir"
    assert res["split"] == split.summary()
    for name in ("popularity", "lightgcn"):
        m = res["models"][name]
        assert {"recall@10", "ndcg@10", "hr@10", "recall@20", "ndcg@20", "train_seconds"} <= set(m)
        assert 0.0 <= m["ndcg@10"] <= 1.0
    # one model per temperature and width, the widths mixed by shares picked on valid; the JSON says which
    gnn = res["models"]["lightgcn"]
    by_tau, by_dim, shares = gnn["valid_ndcg@10_by_tau"], gnn["valid_ndcg@10_by_dim"], gnn["width_shares"]
    assert set(by_tau) == {"0.1", "0.3"} and set(by_dim) == set(shares) == {"8", "16"}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert gnn["dim"] == int(max(shares, key=shares.__getitem__)) == gnn["config"]["model"]["dim"]
    assert gnn["tau"] == float(max(by_tau, key=by_tau.__getitem__))
    # each width alone is on the grid of shares, so the pick validates at least as well as the best width
    assert gnn["valid_ndcg@10"] >= max(by_dim.values()) - 1e-9
    members = gnn["config"]["model"]["members"]
    kept = sum(b > 0 for b in shares.values())
    assert len(members) == (kept if kept > 1 else 0) and all(m[2] > 0 for m in members)
    # then the popularity term's weight, on its grid, served with the snapshot's config
    from socrec_online.models.prior import PRIOR_GRID

    assert gnn["pop_prior"] in PRIOR_GRID and gnn["config"]["model"]["pop_prior"] == gnn["pop_prior"]
    # every other model against the graph alone, user by user on the same test users
    pop = res["models"]["popularity"]
    gap = res["against_lightgcn"]["popularity"]
    assert set(res["against_lightgcn"]) == {"popularity"}
    for k in ("recall@10", "ndcg@10"):
        assert gap[k]["diff"] == pytest.approx(pop[k] - gnn[k])
        assert gap[k]["se"] > 0.0
    assert "popularity - lightgcn: recall@10" in " ".join(r.output.split())


def test_tau_option_refuses_nonsense() -> None:
    for bad in ("0", "-0.1", "hot", ""):
        r = CliRunner().invoke(app, ["bench", "quality", "--tau", bad, "--models", "popularity"])
        assert r.exit_code == 2 and "--tau" in r.output, (bad, r.output)


def test_dim_option_refuses_nonsense() -> None:
    for bad in ("0", "-8", "wide", "1.5", ""):
        r = CliRunner().invoke(app, ["bench", "quality", "--dim", bad, "--models", "popularity"])
        assert r.exit_code == 2 and "--dim" in r.output, (bad, r.output)

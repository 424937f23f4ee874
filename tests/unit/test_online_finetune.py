"""Fine-tuning on the buffer, the evaluation gate, and the snapshots it publishes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from socrec_online import metrics
from socrec_online.data.synthetic import SyntheticConfig, generate
from socrec_online.events import Event
from socrec_online.models.recommender import RecommenderConfig
from socrec_online.online import (
    BufferConfig,
    FinetuneConfig,
    OnlineConfig,
    OnlineLearner,
    ReplayBuffer,
    fine_tune,
)
from socrec_online.online.finetune import buffer_loss, warm_start
from socrec_online.snapshot import current, verify_snapshot


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    ds = generate(SyntheticConfig(n_users=120, n_items=150, interactions_per_user=14, seed=2))
    return list(ds.events())


def _cfg(**ft: object) -> OnlineConfig:
    base = {"steps": 40, "batch_pairs": 256, "grad_accum": 2, "n_neg": 16, "lr": 0.02, "amp": "off"}
    base.update(ft)
    return OnlineConfig(
        buffer=BufferConfig(recent_size=1200, reservoir_size=600, holdout_fraction=0.15),
        finetune=FinetuneConfig(**base),  # type: ignore[arg-type]
        min_train_pairs=50,
        gate_tolerance=0.0,
        dim=16,
        n_layers=2,
    )


def test_fine_tune_changes_weights_and_lowers_the_buffer_loss(stream: list[Event]) -> None:
    buf = ReplayBuffer(BufferConfig(recent_size=1500, reservoir_size=0, holdout_fraction=0.1))
    buf.learn_many(stream)
    data = buf.training_data()
    cfg = RecommenderConfig(n_users=0, n_items=0, dim=16, text_dim=8)
    start = warm_start(None, data, cfg, 0, 0)
    before = buffer_loss(start, data)
    res = fine_tune(start, data, cfg, FinetuneConfig(steps=40, batch_pairs=256, lr=0.02, amp="off"),
                    n_known=(data.n_users, data.n_items))
    assert res.steps == 40 and len(res.losses) == 40
    assert not torch.equal(res.model.user_emb, start.user_emb)
    assert buffer_loss(res.model, data) < before - 0.1
    assert res.candidate["recall@10"] > res.current["recall@10"]


def test_a_popularity_term_is_kept_through_a_fine_tune_and_scores_the_gate(stream: list[Event]) -> None:
    buf = ReplayBuffer(BufferConfig(recent_size=1500, reservoir_size=0, holdout_fraction=0.1))
    buf.learn_many(stream)
    data = buf.training_data()
    cfg = RecommenderConfig(n_users=0, n_items=0, dim=16, text_dim=8, pop_prior=-0.5)
    start = warm_start(None, data, cfg, 0, 0)
    res = fine_tune(start, data, cfg, FinetuneConfig(steps=20, batch_pairs=256, lr=0.02, amp="off"),
                    n_known=(data.n_users, data.n_items))
    assert res.model.cfg.pop_prior == -0.5 and res.model.head.cfg.pop_prior == -0.5
    # the gate scores the candidate as it will serve: with the term (a strong one moves the figure)
    from socrec_online.models.train import ServingRules
    from socrec_online.online.finetune import graph_of, holdout_metrics, interest_of

    text = torch.zeros(data.n_items, 8)
    interest = interest_of(data, text, None, ServingRules.from_settings())
    with_term = holdout_metrics(res.model, graph_of(data, res.model.cfg), text, interest, data, torch.device("cpu"))
    assert with_term == res.candidate
    res.model.set_pop_prior(0.0)
    without = holdout_metrics(res.model, graph_of(data, res.model.cfg), text, interest, data, torch.device("cpu"))
    assert without != with_term


def test_gate_publishes_a_better_candidate_with_both_scores_in_the_manifest(
    stream: list[Event], tmp_path: Path
) -> None:
    runs = metrics.sample("socrec_finetune_runs_total", {"outcome": "published"}) or 0.0
    learner = OnlineLearner(_cfg(), tmp_path, text_dim=8)
    learner.learn_many(stream)
    out = learner.finetune("events")
    assert out.outcome == "published", out.detail
    assert current(tmp_path) == out.version
    manifest = verify_snapshot(Path(str(out.path)))
    m = manifest["metrics"]
    assert m["candidate"]["recall@10"] == m["candidate_recall@10"] >= m["current_recall@10"]
    assert "recall@10" in m["current"] and m["current_baseline"] == "zero-shot-text"
    assert manifest["parent"] is None and manifest["data_window"]["train_pairs"] > 0
    assert metrics.sample("socrec_finetune_runs_total", {"outcome": "published"}) == runs + 1
    # the next one continues from it: the gate is opened (any candidate passes) so that it publishes,
    # and the new snapshot names the first as its parent and is gated against it, not zero-shot
    first_users = list(learner.current_users)
    learner.cfg.gate_tolerance = 1.0
    out2 = learner.finetune("events")
    assert out2.outcome == "published", out2.detail
    assert out2.parent == out.version and current(tmp_path) == out2.version != out.version
    manifest2 = verify_snapshot(Path(str(out2.path)))
    assert manifest2["parent"] == out.version
    assert manifest2["metrics"]["current_baseline"] == out.version
    assert learner.current_users[: len(first_users)] == first_users  # known users keep their rows


def test_gate_rejects_a_worse_candidate_and_current_stays(stream: list[Event], tmp_path: Path) -> None:
    learner = OnlineLearner(_cfg(), tmp_path, text_dim=8)
    learner.learn_many(stream)
    good = learner.finetune("events")
    assert good.outcome == "published"
    rejected = metrics.sample("socrec_finetune_runs_total", {"outcome": "rejected"}) or 0.0
    learner.cfg.finetune.lr = 50.0  # a fine-tune that wrecks the model
    learner.cfg.finetune.steps = 30
    bad = learner.finetune("drift")
    assert bad.outcome == "rejected", bad.metrics
    assert bad.metrics["candidate_recall@10"] < bad.metrics["current_recall@10"]
    assert current(tmp_path) == good.version and learner.current_version == good.version
    assert metrics.sample("socrec_finetune_runs_total", {"outcome": "rejected"}) == rejected + 1


def test_too_little_data_is_skipped_not_failed(tmp_path: Path) -> None:
    learner = OnlineLearner(_cfg(), tmp_path, text_dim=8)
    assert learner.finetune("time").outcome == "skipped"
    assert current(tmp_path) is None


def test_lora_on_the_text_tower_is_trained_and_shipped(
    stream: list[Event], tmp_path: Path, tiny_text_model_path: Path
) -> None:
    from socrec_online.models.lora import lora_state_dict
    from socrec_online.models.text import TextEncoder, TextEncoderConfig
    from socrec_online.snapshot_lora import read_lora

    enc = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model_path)))
    cfg = _cfg(lora_r=2, lora_alpha=4, steps=10, lora_texts=32)
    cfg.gate_tolerance = 1.0
    learner = OnlineLearner(cfg, tmp_path, encoder=enc)
    learner.learn_many(stream)
    out = learner.finetune("events")
    assert out.outcome == "published"
    shipped = read_lora(str(out.path))
    assert shipped is not None and shipped.keys() == lora_state_dict(enc).keys()
    assert any(float(v.abs().sum()) > 0 for k, v in shipped.items() if "lora_B" in k)  # B starts at 0
    manifest = verify_snapshot(Path(str(out.path)))
    assert manifest["config"]["text_lora"]["r"] == 2


def test_a_duty_below_one_pauses_after_every_step_in_proportion(
    stream: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOCREC_FINETUNE_DUTY reaches the training loop, which pauses (1/duty - 1) x each step's time."""
    from socrec_online.online import finetune as ft
    from socrec_online.settings import Settings

    slept: list[float] = []
    monkeypatch.setattr(ft.time, "sleep", slept.append)
    assert ft.pause_after_step(0.02, 0.25) == pytest.approx(0.06) and slept == [pytest.approx(0.06)]
    assert ft.pause_after_step(0.02, 1.0) == 0.0 and len(slept) == 1  # duty 1: no pause, no sleep call

    duty = OnlineConfig.from_settings(Settings(finetune_duty=0.5)).finetune.duty
    assert duty == 0.5
    buf = ReplayBuffer(BufferConfig(recent_size=1500, reservoir_size=0, holdout_fraction=0.1))
    buf.learn_many(stream)
    data = buf.training_data()
    cfg = RecommenderConfig(n_users=0, n_items=0, dim=16, text_dim=8)
    start = warm_start(None, data, cfg, 0, 0)
    slept.clear()
    res = fine_tune(start, data, cfg, FinetuneConfig(steps=6, batch_pairs=256, amp="off", duty=duty),
                    n_known=(data.n_users, data.n_items))
    assert res.steps == 6 and len(slept) == 6 and all(p > 0 for p in slept)

"""Fusion heads: the additive formula cannot personalise; the fused head does."""

from __future__ import annotations

import torch

from socrec_online.models.fusion import AdditiveHead, FusedHead, FusionConfig


def _towers(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h_user = torch.randn(6, 8, generator=g)  # (B, d)
    interest = torch.randn(6, 16, generator=g)  # (B, Dt)
    collab = torch.randn(20, 8, generator=g)  # (C, d)
    text = torch.randn(20, 16, generator=g)  # (C, Dt)
    return h_user, interest, collab, text


def test_additive_ranks_items_identically_for_every_user() -> None:
    torch.manual_seed(0)
    head = AdditiveHead(FusionConfig(kind="additive", dim=8, text_dim=16))
    h_user, interest, collab, text = _towers()
    scores = torch.sigmoid(head.score_many(head.user_vectors(h_user, interest), head.item_vectors(collab, text)))
    order = scores.argsort(dim=1, descending=True)  # (B, C)
    assert (order == order[0]).all()
    assert not torch.allclose(scores[0], scores[1])  # the user term moves scores, never the order


def test_fused_head_lets_user_and_item_interact() -> None:
    torch.manual_seed(0)
    head = FusedHead(FusionConfig(kind="fused", dim=8, text_dim=16))
    h_user, interest, collab, text = _towers()
    uv, iv = head.user_vectors(h_user, interest), head.item_vectors(collab, text)
    assert uv.shape == (6, 8) and iv.shape == (20, 8)
    top = head.score_many(uv, iv).topk(5, dim=1).indices
    assert len({tuple(sorted(r)) for r in top.tolist()}) > 1  # different users, different top-5


def test_new_item_without_collaborative_row_scores_by_text() -> None:
    torch.manual_seed(0)
    head = FusedHead(FusionConfig(kind="fused", dim=8, text_dim=16))
    _, _, _, text = _towers()
    iv = head.item_vectors(None, text)
    assert torch.isfinite(iv).all() and iv.norm(dim=1).min() > 0.99


def _halved(alpha: float) -> FusedHead:
    torch.manual_seed(0)
    return FusedHead(FusionConfig(kind="fused", dim=8, text_dim=16, graph_half=True, text_mix=alpha))


def test_halved_head_mixes_graph_and_fused_halves_by_text_mix() -> None:
    """s = ((1 - a) cos(graph halves) + a cos(fused halves)) / tau, in one dot product."""
    g = torch.Generator().manual_seed(1)
    h_user, collab = torch.randn(6, 16, generator=g), torch.randn(20, 16, generator=g)  # (B, 2d), (C, 2d)
    _, interest, _, text = _towers()
    unit = torch.nn.functional.normalize
    for a in (0.0, 0.3, 1.0):
        head = _halved(a)
        s = head.score_many(head.user_vectors(h_user, interest), head.item_vectors(collab, text))
        graph = unit(h_user[:, :8], dim=1) @ unit(collab[:, :8], dim=1).T
        assert head.user_text is not None and head.item_text is not None
        fused = unit(h_user[:, 8:] + head.user_text(interest), dim=1) @ unit(collab[:, 8:] + head.item_text(text), dim=1).T
        assert torch.allclose(s, ((1 - a) * graph + a * fused) / head.cfg.tau, atol=1e-5)
    # at 0 the text cannot move a score: the model is its graph half
    head = _halved(0.0)
    s0 = head.score_many(head.user_vectors(h_user, interest), head.item_vectors(collab, text))
    s1 = head.score_many(head.user_vectors(h_user, interest * 5 + 1), head.item_vectors(collab, text.flip(0)))
    assert torch.allclose(s0, s1, atol=1e-5)


def test_halves_recover_each_half_for_training() -> None:
    head = _halved(0.5)
    g = torch.Generator().manual_seed(2)
    h_user = torch.randn(6, 16, generator=g)
    _, interest, _, _ = _towers()
    uv = head.user_vectors(h_user, interest)
    parts = head.halves(uv)
    assert len(parts) == 2 and all(torch.allclose(p.norm(dim=1), torch.ones(6), atol=1e-5) for p in parts)
    head.set_text_mix(1.0)
    try:
        head.halves(uv)
    except ValueError:
        pass
    else:
        raise AssertionError("a half with no weight cannot be recovered from the mix")

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

"""DSFormer's dense x 2:4-sparse factorisation: the mask, the straight-through gradient, and a student that
trains, writes its layers back and reloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harnesslm.models.model_loading import load_model
from harnesslm.students.dense_sparse import (
    DenseSparseLinear,
    factorize,
    matched_low_rank,
    materialize,
    two_four_mask,
)


def test_the_mask_keeps_the_two_largest_of_every_four() -> None:
    weight = torch.tensor([[0.1, -3.0, 2.0, 0.5, 9.0, -8.0, 0.0, 1.0, 4.0, -5.0]])
    mask = two_four_mask(weight)
    assert mask.tolist() == [[0, 1, 1, 0, 1, 1, 0, 0, 1, 1]]
    random = torch.randn(6, 32)
    kept = two_four_mask(random).view(6, 8, 4)
    assert torch.all(kept.sum(dim=2) == 2)


def test_the_sparse_factor_learns_straight_through() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(32, 24)
    layer = DenseSparseLinear(linear, rank=16)
    assert layer.dense.shape == (24, 16) and layer.sparse.shape == (16, 32)
    assert layer.parameters_kept() == 24 * 16 + 16 * 32 // 2 + 24
    pruned = layer.sparse_weight()
    assert torch.all((pruned != 0).view(16, 8, 4).sum(dim=2) == 2), "the forward pass sees a 2:4 factor"
    torch.testing.assert_close(layer.weight(), layer.dense @ pruned)
    x = torch.randn(5, 32)
    torch.testing.assert_close(layer(x), x @ layer.weight().T + linear.bias)
    layer(x).sum().backward()
    dropped = two_four_mask(layer.sparse) == 0
    assert layer.sparse.grad[dropped].abs().sum() > 0, "pruned weights get gradients (straight through)"
    with pytest.raises(ValueError, match="rank"):
        DenseSparseLinear(linear, rank=25)

    target = linear.weight.detach()
    layer = DenseSparseLinear(linear, rank=16)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    before = float((layer.weight() - target).pow(2).mean().detach())
    for _ in range(150):
        optimizer.zero_grad()
        loss = (layer.weight() - target).pow(2).mean()
        loss.backward()
        optimizer.step()
    assert float((layer.weight() - target).pow(2).mean().detach()) < 0.8 * before, (
        "the factoriser fits W better than its SVD start"
    )


def test_a_factorized_student_encodes_writes_back_and_reloads(tiny_teacher, tmp_path) -> None:
    model = load_model(str(tiny_teacher), max_seq_length=16)
    ranks = factorize(model, rank_ratio=0.5, min_features=16)
    assert ranks and all(rank >= 1 for rank in ranks.values())
    assert sum(isinstance(m, DenseSparseLinear) for m in model.modules()) == len(ranks)
    texts = ["cordless drill", "garden hose 50 ft"]
    factored = model.encode(texts)
    assert materialize(model) == len(ranks)
    assert not any(isinstance(m, DenseSparseLinear) for m in model.modules())
    np.testing.assert_allclose(model.encode(texts), factored, atol=1e-5)
    model.save(str(tmp_path / "student"))
    np.testing.assert_allclose(load_model(str(tmp_path / "student")).encode(texts), factored, atol=1e-5)
    with pytest.raises(ValueError, match="rank_ratio"):
        factorize(model, rank_ratio=0.0)


def test_the_factored_form_computes_the_same_and_low_rank_keeps_as_many_weights(tiny_teacher) -> None:
    texts = ["cordless drill", "garden hose 50 ft"]
    sparse = load_model(str(tiny_teacher), max_seq_length=16)
    ranks = factorize(sparse, rank_ratio=0.5, min_features=16)
    before = sparse.encode(texts)
    assert materialize(sparse, factored=True) == len(ranks)
    np.testing.assert_allclose(sparse.encode(texts), before, atol=1e-5)
    pairs = [m for m in sparse.modules() if isinstance(m, nn.Sequential) and len(m) == 2]
    assert len(pairs) == len(ranks)
    first = pairs[0][0].weight
    assert ((first.view(first.shape[0], -1, 4) != 0).sum(-1) <= 2).all(), "the first factor is 2:4 sparse"

    dense = nn.Linear(64, 32)
    two_four, low_rank = DenseSparseLinear(dense, 16), DenseSparseLinear(dense, matched_low_rank(32, 64, 16), False)
    assert abs(two_four.parameters_kept() - low_rank.parameters_kept()) <= 64, "one size for both factorisers"
    assert torch.equal(low_rank.sparse_weight(), low_rank.sparse), "the low-rank factor is not pruned"
    plain = load_model(str(tiny_teacher), max_seq_length=16)
    assert factorize(plain, rank_ratio=0.5, min_features=16, two_four=False) != ranks


def test_a_dsformer_student_trains_factorised_and_saves_written_back(tiny_bert_builder, tmp_path) -> None:
    from harnesslm.config import TruncatedStudentConfig
    from harnesslm.distill import build_student
    from harnesslm.models.model_loading import embedding_dim
    from harnesslm.students.dense_sparse import factorize_student, written_back

    words = ["cordless drill", "garden hose 50 ft", "paint roller", "led bulb"]
    teacher = load_model(str(tiny_bert_builder(tmp_path, words, hidden=64, layers=2)), max_seq_length=16)
    plain_cfg = TruncatedStudentConfig.model_validate({"name": "t", "layers": 1})
    assert plain_cfg.dense_sparse.rank_ratio == 0, "off by default"
    plain = build_student(plain_cfg, teacher, embedding_dim(teacher))
    assert not any(isinstance(m, DenseSparseLinear) for m in plain.modules())
    assert written_back(plain) is plain

    cfg = TruncatedStudentConfig.model_validate({"name": "t", "layers": 1, "dense_sparse": {"rank_ratio": 0.5}})
    student = build_student(cfg, teacher, embedding_dim(teacher))
    factored = [m for m in student.modules() if isinstance(m, DenseSparseLinear)]
    assert factored and all(m.two_four for m in factored)
    texts = ["cordless drill", "garden hose 50 ft"]
    saved = written_back(student)
    assert not any(isinstance(m, DenseSparseLinear) for m in saved.modules())
    assert any(isinstance(m, DenseSparseLinear) for m in student.modules()), "the trained student stays factorised"
    np.testing.assert_allclose(saved.encode(texts), student.encode(texts), atol=1e-5)
    assert factorize_student(student, 0.5) == {}, "a factorised student is left as it is"
    assert len(factorize_student(saved, 0.5)) == len(factored), "a written-back one is factorised again (refine)"

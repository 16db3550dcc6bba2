"""FrozenItemContrastiveLoss against a hand-written cross-entropy over the distinct item rows of a batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harnesslm.losses import FrozenItemContrastiveLoss


class FixedQueries(nn.Module):
    """Stands in for a sentence-transformers model: returns ``scale * base`` as the sentence embeddings."""

    def __init__(self, base: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"sentence_embedding": self.scale * self.base}


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


generator = torch.Generator().manual_seed(0)
QUERIES = _unit(torch.randn(3, 4, generator=generator))
ITEMS = _unit(torch.randn(5, 4, generator=generator))
TARGETS = _unit(torch.randn(3, 4, generator=generator))
# [query target row, positive item row, negative item rows]; item 1 is the positive of queries 0 and 2,
# item 3 is a negative of queries 0 and 1, item 0 is nobody's (not a candidate).
LABELS = torch.tensor([[0, 1, 3], [1, 2, 3], [2, 1, 4]])
FEATURES = [{"input_ids": torch.zeros(3, 1, dtype=torch.long)}]


def _expected_contrastive(queries: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy over the distinct candidates {1, 2, 3, 4}, written out with explicit ops."""
    candidates = ITEMS[[1, 2, 3, 4]]
    positive_column = torch.tensor([0, 1, 0])  # item 1 -> column 0, item 2 -> column 1
    logits = queries @ candidates.T / temperature
    log_softmax = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -log_softmax[torch.arange(3), positive_column].mean()


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_matches_hand_computed_cross_entropy(temperature: float) -> None:
    loss = FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, temperature=temperature)
    value = loss(FEATURES, LABELS)
    torch.testing.assert_close(value, _expected_contrastive(QUERIES, temperature))


def test_shared_positive_is_scored_once() -> None:
    """Scoring every label slot (item 1 twice, item 3 twice) would give another value: de-duplication matters."""
    temperature = 0.1
    value = FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, temperature=temperature)(FEATURES, LABELS)
    slots = LABELS[:, 1:].reshape(-1)  # 6 columns with duplicates
    logits = QUERIES @ ITEMS[slots].T / temperature
    positive_column = torch.tensor([0, 2, 4])
    naive = nn.functional.cross_entropy(logits, positive_column)
    assert not torch.allclose(value, naive)
    torch.testing.assert_close(value, _expected_contrastive(QUERIES, temperature))


def test_item_zero_not_in_batch_is_not_a_candidate() -> None:
    """Changing an item row that no label mentions does not change the loss."""
    other_items = ITEMS.clone()
    other_items[0] = QUERIES[0]  # would be a perfect (false) negative for query 0 if it were scored
    base = FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS)(FEATURES, LABELS)
    other = FrozenItemContrastiveLoss(FixedQueries(QUERIES), other_items)(FEATURES, LABELS)
    torch.testing.assert_close(base, other)


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_align_weight_adds_weighted_mse(weight: float) -> None:
    plain = FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, TARGETS, temperature=0.05)
    anchored = FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, TARGETS, temperature=0.05, align_weight=weight)
    # label column 0 picks each query's teacher row: queries 0, 1, 2 -> targets 0, 1, 2
    mse = ((QUERIES - TARGETS) ** 2).mean()
    torch.testing.assert_close(anchored(FEATURES, LABELS) - plain(FEATURES, LABELS), weight * mse)

    # the target row comes from the label, not from the position in the batch
    permuted = LABELS.clone()
    permuted[:, 0] = torch.tensor([2, 0, 1])
    mse_permuted = ((QUERIES - TARGETS[[2, 0, 1]]) ** 2).mean()
    torch.testing.assert_close(
        anchored(FEATURES, permuted),
        _expected_contrastive(QUERIES, 0.05) + weight * mse_permuted,
    )


def test_align_weight_without_targets_raises() -> None:
    with pytest.raises(ValueError, match="query_targets"):
        FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, align_weight=1.0)
    # weight 0 needs no targets
    FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, align_weight=0.0)


def test_gradients_reach_the_model_not_the_items() -> None:
    model = FixedQueries(QUERIES)
    items = ITEMS.clone().requires_grad_(False)
    loss = FrozenItemContrastiveLoss(model, items, TARGETS, temperature=0.05, align_weight=1.0)
    value = loss(FEATURES, LABELS)
    value.backward()
    assert model.scale.grad is not None
    assert model.scale.grad.abs() > 0
    # the analytic derivative of the loss in the scale, at scale 1
    scale = torch.ones((), requires_grad=True)
    expected = _expected_contrastive(scale * QUERIES, 0.05) + ((scale * QUERIES - TARGETS) ** 2).mean()
    expected.backward()
    torch.testing.assert_close(model.scale.grad, scale.grad)
    # items are a frozen, non-persistent buffer
    assert "item_embeddings" not in loss.state_dict()
    assert not loss.item_embeddings.requires_grad
    assert [name for name, _ in loss.named_parameters()] == ["model.scale"]


def test_training_a_real_linear_model_lowers_the_loss() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(4, 4)

    class LinearQueries(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"sentence_embedding": _unit(self.linear(QUERIES))}

    loss = FrozenItemContrastiveLoss(LinearQueries(), ITEMS, temperature=0.1)
    optimizer = torch.optim.SGD(linear.parameters(), lr=0.5)
    start = loss(FEATURES, LABELS).item()
    for _ in range(30):
        optimizer.zero_grad()
        loss(FEATURES, LABELS).backward()
        optimizer.step()
    assert loss(FEATURES, LABELS).item() < start - 0.1


def test_config_dict() -> None:
    loss = FrozenItemContrastiveLoss(FixedQueries(QUERIES), ITEMS, TARGETS, temperature=0.07, align_weight=0.3)
    assert loss.get_config_dict() == {"temperature": 0.07, "align_weight": 0.3}

"""FrozenItemScoreDistillLoss against a hand-written KL over the batch's candidate items plus the L2 distance."""

from __future__ import annotations

import numpy as np
import torch
from stand_ins import FixedQueries, unit

from harnesslm.losses import FrozenItemScoreDistillLoss, teacher_top_items

generator = torch.Generator().manual_seed(0)
ITEMS = unit(torch.randn(6, 4, generator=generator))
TARGETS = unit(torch.randn(3, 4, generator=generator))
STUDENT = unit(torch.randn(2, 4, generator=generator))
LABELS = torch.tensor([[2, 0, 5], [0, 5, 3]])  # text rows 2 and 0; candidates {0, 3, 5}
FEATURES = [{"input_ids": torch.zeros(2, 1, dtype=torch.long)}]


def test_the_loss_is_the_l2_distance_plus_the_kl_over_the_batchs_candidates() -> None:
    loss = FrozenItemScoreDistillLoss(FixedQueries(STUDENT), ITEMS, TARGETS, temperature=0.1, score_weight=0.5)
    teacher = TARGETS[[2, 0]]
    candidates = ITEMS[[0, 3, 5]]
    p = torch.softmax(teacher @ candidates.T / 0.1, dim=-1)
    q = torch.softmax(STUDENT @ candidates.T / 0.1, dim=-1)
    kl = (p * (p.log() - q.log())).sum(dim=-1).mean()
    distance = ((STUDENT - teacher) ** 2).sum(dim=-1).mean()
    assert torch.isclose(loss(FEATURES, LABELS), distance + 0.5 * kl, atol=1e-6)


def test_a_student_equal_to_the_teacher_has_no_loss_and_one_apart_learns_towards_it() -> None:
    exact = FrozenItemScoreDistillLoss(FixedQueries(TARGETS[[2, 0]]), ITEMS, TARGETS)
    assert exact(FEATURES, LABELS).item() < 1e-6
    model = FixedQueries(STUDENT)
    loss = FrozenItemScoreDistillLoss(model, ITEMS, TARGETS)
    before = loss(FEATURES, LABELS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        loss(FEATURES, LABELS).backward()
        optimizer.step()
    assert loss(FEATURES, LABELS) < before


def test_teacher_top_items_are_the_teachers_best_scores() -> None:
    items = ITEMS.numpy()
    rows = teacher_top_items(TARGETS.numpy(), items, k=2)
    expected = np.argsort(-(TARGETS.numpy() @ items.T), axis=1)[:, :2]
    assert rows == expected.tolist()

"""FGM adversarial training on the input embeddings, with a contrastive term between clean and perturbed views."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from harnesslm.losses import AdversarialContrastiveLoss
from harnesslm.losses.adversarial_contrastive import view_contrast
from harnesslm.models.model_loading import load_model

COLUMNS = [
    ["cordless drill", "paint roller", "garden hose", "led bulb"],
    ["dewalt 20v cordless drill kit", "9 in paint roller cover", "50 ft garden hose", "60w led light bulb"],
]


@pytest.fixture
def teacher(tiny_teacher):
    return load_model(str(tiny_teacher), max_seq_length=16)


def test_the_fgm_step_moves_each_text_by_epsilon_and_raises_the_loss(teacher) -> None:
    base = MultipleNegativesRankingLoss(teacher, scale=20.0)
    loss = AdversarialContrastiveLoss(teacher, base, epsilon=0.5, weight=1.0)
    features = [teacher.tokenize(texts) for texts in COLUMNS]
    with loss._recorded() as inputs:
        clean = base(features, None)
    steps = loss.perturbations(clean, inputs)
    assert len(steps) == len(COLUMNS), "one perturbation per forward pass (one per column)"
    for step in steps:
        assert torch.allclose(step.flatten(1).norm(dim=1), torch.full((len(COLUMNS[0]),), 0.5), atol=1e-4)
    with loss._perturbed(steps):
        perturbed = base(features, None)
    assert perturbed.item() > clean.item(), "the gradient's direction makes the loss worse, to first order"
    total = loss(features, None)
    assert total.item() > clean.item()
    total.backward()
    word_embeddings = teacher[0].auto_model.get_input_embeddings().weight
    assert word_embeddings.grad is not None and word_embeddings.grad.abs().sum() > 0, "the weights learn from it"


def test_the_view_term_is_low_when_each_view_finds_its_own() -> None:
    clean = torch.eye(4)
    own = view_contrast(clean, clean + 0.01, temperature=0.05)
    shuffled = view_contrast(clean, clean[[1, 2, 3, 0]], temperature=0.05)
    assert own.item() < 0.01 < shuffled.item()

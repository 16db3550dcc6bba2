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


def test_a_cross_encoder_is_perturbed_on_its_pairs_and_contrasts_its_first_token_views(tiny_teacher) -> None:
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from harnesslm.rerank.models import load_cross_encoder

    model = load_cross_encoder(str(tiny_teacher), max_length=16)
    base = BinaryCrossEntropyLoss(model)
    loss = AdversarialContrastiveLoss(model, base, epsilon=0.5, weight=1.0)
    labels = torch.tensor([1.0, 0.5, 0.0, 1.0])
    with loss._recorded() as inputs, loss._views() as views:
        clean = base(COLUMNS, labels)
    assert len(inputs) == 1, "one forward pass over the (query, text) pairs"
    assert len(views) == 1 and views[0].shape == (4, model[0].auto_model.config.hidden_size)
    steps = loss.perturbations(clean, inputs)
    assert torch.allclose(steps[0].flatten(1).norm(dim=1), torch.full((4,), 0.5), atol=1e-4)
    with loss._perturbed(steps):
        assert base(COLUMNS, labels).item() > clean.item()
    total = loss(COLUMNS, labels, prompt=None, task=None)  # the cross-encoder trainer's keywords pass through
    assert total.item() > clean.item()
    total.backward()
    head = model[0].auto_model.classifier.weight
    assert head.grad is not None and head.grad.abs().sum() > 0

"""The Walmart recipe for the bi-encoder teacher: InfoNCE plus Margin-MSE to a cross-encoder's margins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from stand_ins import ANCHORS, POSITIVES
from torch.nn import functional

from harnesslm.config import TeacherConfig
from harnesslm.losses import ContrastiveMarginMSELoss
from harnesslm.models.model_loading import load_model
from harnesslm.training.teacher_finetune import contrastive_dataset, pair_columns, teacher_loss, with_margins

NEGATIVES = ["drill bit set", "paint tray liner", "hose nozzle", "bulb socket adapter"]


@pytest.fixture
def teacher(tiny_teacher):
    return load_model(str(tiny_teacher), max_seq_length=16)


def _features(teacher):
    return [teacher.tokenize(texts) for texts in (ANCHORS, POSITIVES, NEGATIVES)]


def _margins(teacher) -> torch.Tensor:
    a, p, n = (teacher(f)["sentence_embedding"] for f in _features(teacher))
    return 20.0 * (functional.cosine_similarity(a, p) - functional.cosine_similarity(a, n))


def test_the_loss_is_the_infonce_plus_the_weighted_squared_margin_gap(teacher) -> None:
    labels = torch.tensor([[1.0], [-0.5], [2.0], [0.0]])
    plain = MultipleNegativesRankingLoss(teacher, scale=20.0)(_features(teacher), None)
    off = ContrastiveMarginMSELoss(teacher, 20.0, margin_weight=0.0)(_features(teacher), labels)
    assert torch.isclose(off, plain, atol=1e-6), "weight 0 is the InfoNCE alone"
    total = ContrastiveMarginMSELoss(teacher, 20.0, margin_weight=0.5)(_features(teacher), labels)
    expected = plain + 0.5 * functional.mse_loss(_margins(teacher), labels.view(-1))
    assert torch.isclose(total, expected, atol=1e-5)
    total.backward()
    assert teacher[0].auto_model.get_input_embeddings().weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="2 labelled margins per row but 1 negative"):
        ContrastiveMarginMSELoss(teacher, 20.0)(_features(teacher), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="margin_weight"):
        ContrastiveMarginMSELoss(teacher, 20.0, margin_weight=-1.0)


def test_training_on_the_margin_term_moves_the_margins_toward_the_labels(teacher) -> None:
    labels = torch.tensor([[3.0], [-3.0], [3.0], [-3.0]])
    loss = ContrastiveMarginMSELoss(teacher, 20.0, margin_weight=1.0)
    optimizer = torch.optim.SGD(teacher.parameters(), lr=0.05)
    with torch.no_grad():
        before = functional.mse_loss(_margins(teacher), labels.view(-1)).item()
    for _ in range(5):
        optimizer.zero_grad()
        embeddings = [teacher(f)["sentence_embedding"] for f in _features(teacher)]
        loss.margin_loss(embeddings, labels).backward()
        optimizer.step()
    with torch.no_grad():
        after = functional.mse_loss(_margins(teacher), labels.view(-1)).item()
    assert after < 0.9 * before


def test_rows_are_labelled_with_standardised_cross_encoder_margins() -> None:
    texts = {"a": "drill kit", "b": "drill driver", "n1": "garden hose", "n2": "hose reel"}
    dataset = contrastive_dataset(["drill", "drill"], ["a", "b"], [["n1", "n2"], ["n1", "n2"]], texts, 2)
    queries, pairs = pair_columns(dataset)
    assert queries == ["drill"] * 6
    assert pairs == ["drill kit", "garden hose", "hose reel", "drill driver", "garden hose", "hose reel"]
    scores = np.array([3.0, 1.0, 0.0, 2.0, 1.0, 0.0])
    labelled = with_margins(dataset, scores, margin_scale=2.0)
    spread = scores.std()
    assert np.allclose(labelled["label"], 2.0 * np.array([[2.0, 3.0], [1.0, 2.0]]) / spread, atol=1e-6)
    with pytest.raises(ValueError, match="at least one negative"):
        with_margins(dataset.select_columns(["anchor", "positive"]), scores[:2], 1.0)


def test_the_teacher_config_turns_the_term_on_and_checks_its_inputs(teacher) -> None:
    config = TeacherConfig.model_validate(
        {"schedule": {"steps": 1}, "cross_encoder_labels": {"weight": 0.3, "model": "ce"}}
    )
    loss = teacher_loss(teacher, config)
    assert isinstance(loss, ContrastiveMarginMSELoss) and loss.margin_weight == 0.3 and loss.scale == 20.0
    assert not isinstance(teacher_loss(teacher, TeacherConfig.model_validate({})), ContrastiveMarginMSELoss)
    assert TeacherConfig.model_validate({"cross_encoder_labels": {"weight": 0.3}}).cross_encoder_labels.model is None
    with pytest.raises(ValidationError, match=r"needs teacher\.loss: infonce"):
        TeacherConfig.model_validate({"loss": "triplet", "cross_encoder_labels": {"weight": 0.3, "model": "ce"}})

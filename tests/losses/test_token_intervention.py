"""The token-intervention regulariser (Amazon OOD text matching): a token's effect on the score stays near the base
model's."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from harnesslm.config import TeacherConfig
from harnesslm.losses import TokenInterventionLoss
from harnesslm.losses.token_intervention import _rows, removed, sample_positions
from harnesslm.models.model_loading import load_model
from harnesslm.training.teacher_finetune import teacher_loss

ANCHORS = ["cordless drill", "paint roller cover", "garden hose 50 ft", "led bulb"]
POSITIVES = ["dewalt 20v cordless drill kit", "9 in paint roller cover", "50 ft garden hose", "60w led light bulb"]


@pytest.fixture
def teacher(tiny_teacher):
    return load_model(str(tiny_teacher), max_seq_length=16)


def test_positions_skip_special_tokens_and_removal_only_masks_them(teacher) -> None:
    features = teacher.tokenize(ANCHORS)
    generator = torch.Generator().manual_seed(0)
    rows, positions = sample_positions(features, 3, generator)
    assert len(set(rows.tolist())) == len(rows) == 3
    lengths = features["attention_mask"].sum(dim=1)
    for row, position in zip(rows.tolist(), positions.tolist(), strict=True):
        assert 1 <= position <= int(lengths[row]) - 2, "never the first or the last attended token"
    picked = _rows(features, rows)
    cut = removed(picked, positions)
    assert (picked["attention_mask"].sum() - cut["attention_mask"].sum()).item() == 3, "one token a row"
    assert torch.equal(cut["input_ids"], picked["input_ids"])
    short = teacher.tokenize(["a"])  # [CLS] a [SEP] has one removable token; [CLS] [SEP] none
    assert sample_positions(teacher.tokenize([""]), 2, generator) is None
    assert sample_positions(short, 2, generator)[1].tolist() == [1]


def test_the_term_is_zero_for_the_base_model_itself_and_trains_away_from_a_changed_one(teacher) -> None:
    base = MultipleNegativesRankingLoss(teacher, scale=20.0)
    features = [teacher.tokenize(texts) for texts in (ANCHORS, POSITIVES)]
    plain = base(features, None)
    off = TokenInterventionLoss(teacher, base, weight=0.0)(features, None)
    assert torch.isclose(off, plain)
    loss = TokenInterventionLoss(teacher, base, weight=1.0, tokens=8)
    assert torch.isclose(loss(features, None), plain, atol=1e-5), "an unchanged model has the base's effects"
    with torch.no_grad():  # fine-tuning moves the encoder away from its base
        teacher[0].auto_model.get_input_embeddings().weight.mul_(1.5).add_(0.05)
    gap = loss.intervention_gap(*features)
    assert gap > 0
    gap.backward()
    assert teacher[0].auto_model.get_input_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.base_model.parameters()), "the base model stays frozen"
    assert not any(p is q for p in loss.parameters() for q in loss.base_model.parameters()), "not trained or saved"
    with pytest.raises(ValueError, match="tokens"):
        TokenInterventionLoss(teacher, base, tokens=0)


def test_the_teacher_config_turns_it_on(teacher) -> None:
    config = TeacherConfig.model_validate({"schedule": {"steps": 1}, "ood_regularizer": {"weight": 0.3, "tokens": 4}})
    loss = teacher_loss(teacher, config)
    assert isinstance(loss, TokenInterventionLoss) and loss.weight == 0.3 and loss.tokens == 4
    plain = teacher_loss(teacher, TeacherConfig.model_validate({"schedule": {"steps": 1}}))
    assert not isinstance(plain, TokenInterventionLoss)

"""The relevance teacher: a cross-encoder fine-tuned on the judgments as soft targets."""

from __future__ import annotations

from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from torch import nn

from harnesslm.config import RelevanceConfig
from harnesslm.losses.adversarial_contrastive import AdversarialContrastiveLoss
from harnesslm.training.trainer import schedule_args, train_cross_encoder


def relevance_teacher_loss(model: CrossEncoder, cfg: RelevanceConfig) -> nn.Module:
    """Binary cross-entropy on soft targets (``BCEWithLogits`` accepts probabilities, not only 0/1), wrapped in
    FGM adversarial training with a clean-to-perturbed view contrast when ``relevance.teacher.adversarial`` asks."""
    loss: nn.Module = BinaryCrossEntropyLoss(model)
    adversarial = cfg.teacher.adversarial
    if adversarial.method == "fgm":
        loss = AdversarialContrastiveLoss(model, loss, adversarial.epsilon, adversarial.weight)
    return loss


def fine_tune_relevance_teacher(
    model: CrossEncoder, dataset: Dataset, cfg: RelevanceConfig, progress: bool = True
) -> dict[str, float]:
    """Train ``model`` on (query, text, soft label) rows with :func:`relevance_teacher_loss`."""
    return train_cross_encoder(
        model,
        dataset.shuffle(seed=cfg.seed),
        relevance_teacher_loss(model, cfg),
        **schedule_args(cfg.teacher.schedule),
        progress=progress,
    )

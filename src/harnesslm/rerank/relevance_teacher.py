"""The relevance teacher: a cross-encoder fine-tuned on the judgments as soft targets."""

from __future__ import annotations

from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

from harnesslm.config import RelevanceConfig
from harnesslm.training.trainer import schedule_args, train_cross_encoder


def fine_tune_relevance_teacher(
    model: CrossEncoder, dataset: Dataset, cfg: RelevanceConfig, progress: bool = True
) -> dict[str, float]:
    """Binary cross-entropy on soft targets (``BCEWithLogits`` accepts probabilities, not only 0/1)."""
    loss = BinaryCrossEntropyLoss(model)
    return train_cross_encoder(
        model,
        dataset.shuffle(seed=cfg.seed),
        loss,
        **schedule_args(cfg.teacher.schedule),
        progress=progress,
    )

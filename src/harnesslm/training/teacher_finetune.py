"""Phase 1: fine-tune the teacher contrastively on (query, relevant item) pairs with mined hard negatives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import (
    MultipleNegativesRankingLoss,
    TripletDistanceMetric,
    TripletLoss,
)
from torch import nn

from harnesslm.config import TeacherConfig
from harnesslm.losses.adversarial_contrastive import AdversarialContrastiveLoss
from harnesslm.losses.contrastive_margin_mse import ContrastiveMarginMSELoss
from harnesslm.losses.graph_regularized import NEIGHBOR_COLUMN, GraphRegularizedLoss
from harnesslm.losses.token_intervention import TokenInterventionLoss
from harnesslm.models.prompts import training_prompts
from harnesslm.training.trainer import train_on_schedule


@dataclass(frozen=True)
class PairSet:
    """(query, positive item) pairs, and every query's judged positives (kept out of its negatives)."""

    queries: list[str]
    positives: list[str]
    positives_by_query: dict[str, set[str]]


def positive_pairs(judgments: pd.DataFrame, relevant_at: float) -> PairSet:
    """One pair per judged item with ``label >= relevant_at``."""
    relevant = judgments[judgments["label"] >= relevant_at]
    by_query: dict[str, set[str]] = {}
    for query, item in zip(relevant["query"], relevant["item_id"], strict=True):
        by_query.setdefault(query, set()).add(item)
    return PairSet(relevant["query"].tolist(), relevant["item_id"].tolist(), by_query)


def contrastive_dataset(
    queries: Sequence[str],
    positives: Sequence[str],
    negatives: Sequence[Sequence[str]],
    texts: Mapping[str, str],
    n_negatives: int,
    neighbors: Sequence[str] | None = None,
) -> Dataset:
    """Columns ``anchor, positive, negative_1..n`` of texts, the layout MultipleNegativesRankingLoss reads, and
    ``neighbor`` last when ``neighbors`` (one item id per row: the graph regulariser's) are given.

    Rows whose mining found fewer than ``n_negatives`` negatives are dropped (every row needs every column).
    """
    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    columns.update({f"negative_{i + 1}": [] for i in range(n_negatives)})
    if neighbors is not None:
        columns[NEIGHBOR_COLUMN] = []
    for row, (query, positive, negs) in enumerate(zip(queries, positives, negatives, strict=True)):
        if len(negs) < n_negatives:
            continue
        columns["anchor"].append(query)
        columns["positive"].append(texts[positive])
        for i in range(n_negatives):
            columns[f"negative_{i + 1}"].append(texts[negs[i]])
        if neighbors is not None:
            columns[NEIGHBOR_COLUMN].append(texts[neighbors[row]])
    return Dataset.from_dict(columns)


def pair_columns(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The (query, item text) pairs a cross-encoder scores to label ``dataset``: each row's positive, then each
    of its negatives, row by row (the order :func:`with_margins` reads the scores in)."""
    negatives = [c for c in dataset.column_names if c.startswith("negative_")]
    queries, texts = [], []
    for row in dataset.select_columns(["anchor", "positive", *negatives]):
        queries += [row["anchor"]] * (1 + len(negatives))
        texts += [row["positive"], *(row[c] for c in negatives)]
    return queries, texts


def with_margins(dataset: Dataset, scores: np.ndarray, margin_scale: float) -> Dataset:
    """``dataset`` plus a ``label`` column: per row, the cross-encoder's margins (positive less each negative)
    in standard deviations of all its scores, times ``margin_scale``. ``scores`` are in :func:`pair_columns`'
    order. Standardising makes the targets independent of the cross-encoder's logit range (a teacher trained on
    soft targets gives logits in a narrow band)."""
    per_row = np.asarray(scores, dtype=np.float64).reshape(len(dataset), -1)
    if per_row.shape[1] < 2:
        raise ValueError("margins need at least one negative column beside the positive")
    spread = per_row.std() or 1.0
    margins = margin_scale * (per_row[:, :1] - per_row[:, 1:]) / spread
    return dataset.add_column("label", margins.astype(np.float32).tolist())


def teacher_loss(model: SentenceTransformer, config: TeacherConfig) -> nn.Module:
    """The loss ``config`` asks for: InfoNCE over in-batch and hard negatives (scale = 1 / temperature), with a
    cross-encoder's margins beside it when ``cross_encoder_labels`` is on, or a cosine triplet loss over each
    row's first hard negative; with the graph and token-intervention regularisers beside it and wrapped in FGM
    adversarial training if asked."""
    if config.loss == "triplet":
        loss: nn.Module = TripletLoss(model, TripletDistanceMetric.COSINE, triplet_margin=config.triplet_margin)
    elif config.cross_encoder_labels.weight > 0:
        loss = ContrastiveMarginMSELoss(model, 1.0 / config.temperature, config.cross_encoder_labels.weight)
    else:
        loss = MultipleNegativesRankingLoss(model, scale=1.0 / config.temperature)
    graph = config.graph_regularizer
    if graph.weight > 0:
        loss = GraphRegularizedLoss(model, loss, graph.weight, graph.temperature)
    ood = config.ood_regularizer
    if ood.weight > 0:  # the frozen base: the teacher as it is now, before fine-tuning
        loss = TokenInterventionLoss(model, loss, ood.weight, ood.tokens, config.temperature, seed=config.schedule.seed)
    adversarial = config.adversarial
    if adversarial.method == "fgm":
        loss = AdversarialContrastiveLoss(model, loss, adversarial.epsilon, adversarial.weight, config.temperature)
    return loss


def fine_tune_teacher(
    model: SentenceTransformer,
    dataset: Dataset,
    config: TeacherConfig,
    progress: bool = True,
    callbacks: list | None = None,
) -> dict[str, float]:
    """Train ``model`` on ``dataset`` with :func:`teacher_loss`; ``callbacks`` are the trainer's
    (``transformers.TrainerCallback``). A triplet loss reads one negative: the other negative columns are left
    out."""
    if config.loss == "triplet":
        neighbor = [NEIGHBOR_COLUMN] if NEIGHBOR_COLUMN in dataset.column_names else []
        dataset = dataset.select_columns(["anchor", "positive", "negative_1", *neighbor])
    return train_on_schedule(
        model,
        dataset,
        teacher_loss(model, config),
        config.schedule,
        prompts=training_prompts(model, dataset.column_names),
        progress=progress,
        callbacks=callbacks,
        label="teacher",
    )

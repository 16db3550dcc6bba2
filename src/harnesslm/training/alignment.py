"""Phase 2: the student reproduces the teacher's query embeddings, so it can search the teacher's index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss

from harnesslm.config import StudentConfig
from harnesslm.losses.frozen_item_score_distill import FrozenItemScoreDistillLoss, teacher_top_items
from harnesslm.students.heads import projection_of
from harnesslm.students.table_rows import rows_in_use
from harnesslm.training.trainer import train_on_schedule


def fit_projection(
    student: SentenceTransformer,
    queries: Sequence[str],
    targets: np.ndarray,
    ridge: float = 1e-2,
    max_texts: int | None = None,
    seed: int = 0,
) -> float:
    """Set the student's projection to the ridge-regression map from its features to the teacher's embeddings.

    A closed-form warm start: gradient alignment then begins from the best linear map instead of a random or
    identity one, which matters most for the static student, whose PCA space is a rotation of the teacher's.
    ``max_texts`` fits on a seeded sample (a transformer student encodes a few hundred texts a second on a
    CPU; a 384x384 map needs far fewer than a 100k-text pool). Returns the mean squared error of the fit.
    """
    projection = projection_of(student)
    if projection is None:
        return float("nan")
    if max_texts is not None and len(queries) > max_texts:
        rows = np.sort(np.random.default_rng(seed).choice(len(queries), max_texts, replace=False))
        queries, targets = [queries[i] for i in rows], targets[rows]
    modules = list(student)
    features_model = SentenceTransformer(modules=modules[: modules.index(projection)], device="cpu")
    features = features_model.encode(list(queries), batch_size=256, convert_to_numpy=True)
    x = np.hstack([features, np.ones((len(features), 1), dtype=features.dtype)]).astype(np.float64)
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ targets.astype(np.float64))
    with torch.no_grad():
        projection.linear.weight.copy_(torch.from_numpy(weights[:-1].T).float())
        projection.linear.bias.copy_(torch.from_numpy(weights[-1]).float())
    residual = x @ weights - targets
    return float(np.mean(residual**2))


def align_student(
    student: SentenceTransformer,
    queries: Sequence[str],
    teacher_embeddings: np.ndarray,
    config: StudentConfig,
    progress: bool = True,
    callbacks: list | None = None,
    item_embeddings: np.ndarray | None = None,
) -> dict[str, float]:
    """Minimise MSE (default) or cosine distance to the teacher's normalised query embeddings.

    ``queries`` is the pool: training queries plus any unlabeled or synthetic ones; no labels are needed.
    Uses sentence-transformers' ``EmbedDistillLoss`` (MSELoss is its ``mse`` case). With
    ``align.score_weight`` the student also matches the teacher's scores over its top items
    (:class:`~harnesslm.losses.FrozenItemScoreDistillLoss`), which needs ``item_embeddings``.
    """
    schedule = config.align
    if schedule.steps <= 0 or not len(queries):
        return {}
    if schedule.score_weight > 0:
        if item_embeddings is None:
            raise ValueError("align.score_weight > 0 needs the teacher's item embeddings")
        top = teacher_top_items(teacher_embeddings, item_embeddings, schedule.score_k)
        dataset = Dataset.from_dict({"query": list(queries), "label": [[i, *rows] for i, rows in enumerate(top)]})
    else:
        dataset = Dataset.from_dict({"query": list(queries), "label": teacher_embeddings.astype(np.float32).tolist()})
    with rows_in_use(student, queries) as (model, write_back):
        if schedule.score_weight > 0:
            loss = FrozenItemScoreDistillLoss(
                model,
                torch.from_numpy(np.ascontiguousarray(item_embeddings, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(teacher_embeddings, dtype=np.float32)),
                temperature=schedule.score_temperature,
                score_weight=schedule.score_weight,
            )
        else:
            loss = EmbedDistillLoss(model, distance_metric=schedule.loss)
        return train_on_schedule(
            model,
            dataset,
            loss,
            schedule,
            progress=progress,
            callbacks=[*write_back, *(callbacks or [])],
            label=f"align {config.name!r}",
        )

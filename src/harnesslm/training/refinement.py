"""Phase 3: contrastive refinement of the student's queries against the frozen teacher item embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from harnesslm.config import StudentConfig
from harnesslm.losses import FrozenItemContrastiveLoss
from harnesslm.students.table_rows import rows_in_use
from harnesslm.training.trainer import train_on_schedule


def refinement_dataset(
    queries: Sequence[str],
    positives: Sequence[str],
    negatives: Sequence[Sequence[str]],
    query_rows: Mapping[str, int],
    item_rows: Mapping[str, int],
    n_negatives: int,
) -> Dataset:
    """Rows of (query text, [teacher query row, positive item row, negative item rows...]).

    Rows point into the precomputed embedding matrices instead of carrying vectors, so the dataset stays
    small however large the teacher's dimension.
    """
    texts, labels = [], []
    for query, positive, negs in zip(queries, positives, negatives, strict=True):
        if len(negs) < n_negatives:
            continue
        texts.append(query)
        labels.append([query_rows[query], item_rows[positive], *(item_rows[n] for n in negs[:n_negatives])])
    return Dataset.from_dict({"query": texts, "label": labels})


def refine_student(
    student: SentenceTransformer,
    dataset: Dataset,
    item_embeddings: np.ndarray,
    query_targets: np.ndarray,
    config: StudentConfig,
    progress: bool = True,
    callbacks: list | None = None,
) -> dict[str, float]:
    """Train the student query tower with :class:`FrozenItemContrastiveLoss`; items never move."""
    schedule = config.refine
    if schedule.steps <= 0 or not len(dataset):
        return {}
    with rows_in_use(student, dataset["query"]) as (model, write_back):
        loss = FrozenItemContrastiveLoss(
            model,
            torch.from_numpy(item_embeddings),
            torch.from_numpy(query_targets),
            temperature=schedule.temperature,
            align_weight=schedule.align_weight,
        )
        return train_on_schedule(
            model,
            dataset,
            loss,
            schedule,
            progress=progress,
            callbacks=[*write_back, *(callbacks or [])],
            label=f"refine {config.name!r}",
        )

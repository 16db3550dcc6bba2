"""Distillation from the relevance teacher: a small cross-encoder re-ranker, or the bi-encoder student
itself against frozen teacher item embeddings, each with any of the ranking losses."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sentence_transformers.cross_encoder import CrossEncoder

from harnesslm.config import RelevanceConfig
from harnesslm.rerank.datasets import bi_encoder_dataset, reranker_dataset
from harnesslm.rerank.losses import bi_encoder_ranking_loss, cross_encoder_ranking_loss, rows_per_batch, takes_pairs
from harnesslm.training.trainer import schedule_args, train_cross_encoder


def distill_reranker(
    student: CrossEncoder,
    labelled: pd.DataFrame,
    item_texts: Mapping[str, str],
    loss_name: str,
    cfg: RelevanceConfig,
    max_gain: float,
    progress: bool = True,
) -> dict[str, float]:
    """Train the small cross-encoder on the teacher's scores with one of the ranking losses, for
    ``student.steps`` steps of ``student.batch_size`` lists (margin-MSE: the same number of pair scores)."""
    schedule = cfg.reranker.schedule
    n_lists = schedule.steps * schedule.batch_size
    dataset = reranker_dataset(labelled, item_texts, loss_name, cfg.list_size, n_lists, max_gain, cfg.seed)
    loss = cross_encoder_ranking_loss(loss_name, student)
    torch.manual_seed(schedule.seed)
    return train_cross_encoder(
        student,
        dataset,
        loss,
        **(schedule_args(schedule) | {"batch_size": rows_per_batch(loss_name, schedule.batch_size, cfg.list_size)}),
        progress=progress,
    )


def distill_bi_encoder(
    student,
    labelled: pd.DataFrame,
    item_rows: Mapping[str, int],
    item_embeddings: np.ndarray,
    loss_name: str,
    cfg: RelevanceConfig,
    max_gain: float,
    score_scale: float,
    progress: bool = True,
) -> dict[str, float]:
    """Teach the bi-encoder student the cross-encoder's ranking of each query's candidates, so retrieval
    itself improves; item embeddings stay the teacher's (nothing is re-indexed).

    ``score_scale`` (the refinement's ``1 / temperature``) puts the student's cosines in the units of the
    teacher's logits for margin-MSE and is the listwise losses' inverse temperature.
    """
    from harnesslm.training.trainer import train

    schedule = cfg.bi_encoder.schedule
    n_lists = schedule.steps * schedule.batch_size
    dataset = bi_encoder_dataset(labelled, item_rows, loss_name, cfg.list_size, n_lists, max_gain, cfg.seed)
    items = torch.from_numpy(np.ascontiguousarray(item_embeddings, dtype=np.float32))
    options = {"scale": score_scale} if takes_pairs(loss_name) else {"temperature": 1.0 / score_scale}
    loss = bi_encoder_ranking_loss(loss_name, student, items, **options)
    return train(
        student,
        dataset,
        loss,
        **(schedule_args(schedule) | {"batch_size": rows_per_batch(loss_name, schedule.batch_size, cfg.list_size)}),
        no_duplicates=False,
        progress=progress,
    )

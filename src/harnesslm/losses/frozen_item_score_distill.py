"""Alignment that matches the teacher's scores over its own items, not only its embedding."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn


class FrozenItemScoreDistillLoss(nn.Module):
    def __init__(
        self,
        model: SentenceTransformer,
        item_embeddings: Tensor,
        query_targets: Tensor,
        temperature: float = 0.05,
        score_weight: float = 1.0,
        mse_weight: float = 1.0,
    ) -> None:
        """The student's query embedding should rank the teacher's items as the teacher's does.

        Alignment by MSE weighs every direction of the embedding alike; retrieval only sees the few directions
        that separate the items a query could match. This loss adds score matching (EmbedDistill's second term):
        for every text of a batch, the candidates are the union of the batch's teacher top-k items (mined once
        from the teacher's index, no labels needed) and the student's softmax over its scores of them is pulled
        to the teacher's (KL divergence at ``temperature``), beside the MSE to the teacher's embedding. Items
        stay the teacher's frozen embeddings, so the index stays valid.

        Args:
            model: the student query encoder (L2-normalised embeddings in the teacher's space).
            item_embeddings: ``(n_items, dim)`` normalised teacher item embeddings (frozen).
            query_targets: ``(n_texts, dim)`` the teacher's query embeddings of the training texts.
            temperature: softmax temperature of the scores (scale = 1 / temperature).
            score_weight: weight of the score-matching KL term.
            mse_weight: weight of the squared L2 distance to the teacher's embedding (summed over dimensions,
                as LEAF's loss, so that it is on the scale of the KL term; mean-over-dimensions MSE is 1/dim of it).

        References:
            - Kim et al., EmbedDistill: A Geometric Knowledge Distillation for Information Retrieval, 2023
              (embedding matching plus query-document score matching).
            - Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, 2015 (soft targets, KL).

        Inputs:
            +---------------+------------------------------------------------------------------+
            | Texts         | Labels                                                           |
            +===============+==================================================================+
            | query         | ``(batch, 1 + k)`` int rows: the text's target row, its teacher top-k items |
            +---------------+------------------------------------------------------------------+

        Example:
            ::

                rows = teacher_top_items(targets, item_emb, k=20)
                dataset = Dataset.from_dict({"query": texts, "label": [[i, *r] for i, r in enumerate(rows)]})
                loss = FrozenItemScoreDistillLoss(student, torch.from_numpy(item_emb), torch.from_numpy(targets))
        """
        super().__init__()
        self.model = model
        self.register_buffer("item_embeddings", item_embeddings.float(), persistent=False)
        self.register_buffer("query_targets", query_targets.float(), persistent=False)
        self.temperature = temperature
        self.score_weight = score_weight
        self.mse_weight = mse_weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = next(iter(sentence_features))
        queries = self.model(features)["sentence_embedding"]
        labels = labels.long().to(queries.device)
        teacher = self.query_targets[labels[:, 0]].to(queries.device)
        candidates = torch.unique(labels[:, 1:].reshape(-1))
        items = self.item_embeddings[candidates].to(queries.device)
        student_scores = nn.functional.log_softmax(queries @ items.T / self.temperature, dim=-1)
        teacher_scores = nn.functional.log_softmax(teacher @ items.T / self.temperature, dim=-1)
        kl = nn.functional.kl_div(student_scores, teacher_scores, log_target=True, reduction="batchmean")
        distance = (queries - teacher).pow(2).sum(dim=-1).mean()
        return self.mse_weight * distance + self.score_weight * kl

    def get_config_dict(self) -> dict[str, float]:
        return {"temperature": self.temperature, "score_weight": self.score_weight, "mse_weight": self.mse_weight}


def teacher_top_items(query_targets, item_embeddings, k: int) -> list[list[int]]:
    """Each text's ``k`` best items by the teacher's own scores (exact inner-product search, FAISS)."""
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(item_embeddings.shape[1])
    index.add(np.ascontiguousarray(item_embeddings, dtype=np.float32))
    _, rows = index.search(np.ascontiguousarray(query_targets, dtype=np.float32), k)
    return rows.tolist()

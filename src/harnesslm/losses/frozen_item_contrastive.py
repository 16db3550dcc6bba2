"""Contrastive loss of student query embeddings against *frozen, precomputed* teacher item embeddings."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn


class FrozenItemContrastiveLoss(nn.Module):
    def __init__(
        self,
        model: SentenceTransformer,
        item_embeddings: Tensor,
        query_targets: Tensor | None = None,
        temperature: float = 0.05,
        align_weight: float = 0.0,
    ) -> None:
        """InfoNCE of a student query encoder over the teacher's item index, plus an optional L2 anchor.

        Phase 3 of HARNESS-LM: only the query tower trains; items stay the teacher's embeddings, so the index
        built by the teacher stays valid. sentence-transformers' ``MultipleNegativesRankingLoss`` embeds every
        column with the model being trained, so it cannot score against fixed vectors: hence this loss.

        Each row's label holds integer rows: ``[query_target_row, positive_item_row, negative_item_rows...]``.
        The candidates of a batch are every distinct item row in it (in-batch negatives plus the mined hard
        negatives); an item that appears twice is scored once, so a shared positive is never its own negative.

        Args:
            model: the student query encoder (outputs L2-normalised embeddings in the teacher's space).
            item_embeddings: ``(n_items, dim)`` normalised teacher item embeddings (frozen).
            query_targets: ``(n_queries, dim)`` teacher query embeddings, needed when ``align_weight > 0``.
            temperature: softmax temperature of the similarities (scale = 1 / temperature).
            align_weight: weight of the MSE between student and teacher query embeddings, which keeps the
                student anchored to the space the index was built in.

        References:
            - van den Oord et al., Representation Learning with Contrastive Predictive Coding (InfoNCE), 2018.
            - HARNESS-LM (2026), phase 3: contrastive refinement against frozen teacher item embeddings.

        Inputs:
            +---------------+--------------------------------------------------------------+
            | Texts         | Labels                                                       |
            +===============+==============================================================+
            | query         | ``(batch, 2 + n_negatives)`` int rows: target, positive, negs |
            +---------------+--------------------------------------------------------------+

        Example:
            ::

                loss = FrozenItemContrastiveLoss(student, torch.from_numpy(item_emb), torch.from_numpy(q_emb),
                                                 temperature=0.05, align_weight=1.0)
        """
        super().__init__()
        if align_weight > 0 and query_targets is None:
            raise ValueError("align_weight > 0 needs query_targets (the teacher's query embeddings)")
        self.model = model
        self.register_buffer("item_embeddings", item_embeddings.float(), persistent=False)
        self.register_buffer(
            "query_targets", None if query_targets is None else query_targets.float(), persistent=False
        )
        self.temperature = temperature
        self.align_weight = align_weight
        self.cross_entropy = nn.CrossEntropyLoss()

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = next(iter(sentence_features))
        queries = self.model(features)["sentence_embedding"]
        labels = labels.long().to(queries.device)
        item_rows = labels[:, 1:]
        candidates, inverse = torch.unique(item_rows.reshape(-1), return_inverse=True)
        targets = inverse.reshape(item_rows.shape)[:, 0]
        items = self.item_embeddings[candidates].to(queries.device)
        scores = queries @ items.T / self.temperature
        loss = self.cross_entropy(scores, targets)
        if self.align_weight > 0:
            teacher_queries = self.query_targets[labels[:, 0]].to(queries.device)
            loss = loss + self.align_weight * nn.functional.mse_loss(queries, teacher_queries)
        return loss

    def get_config_dict(self) -> dict[str, float]:
        return {"temperature": self.temperature, "align_weight": self.align_weight}

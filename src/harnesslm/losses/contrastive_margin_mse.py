"""InfoNCE over in-batch and hard negatives plus Margin-MSE to a cross-encoder's margins, from one forward pass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch import Tensor
from torch.nn import functional


class ContrastiveMarginMSELoss(MultipleNegativesRankingLoss):
    def __init__(self, model: SentenceTransformer, scale: float = 20.0, margin_weight: float = 1.0) -> None:
        """``MultipleNegativesRankingLoss`` on ``(anchor, positive, negative_1..n)``, plus ``margin_weight`` times
        the squared gap between the bi-encoder's margins ``scale * (cos(a, p) - cos(a, n_i))`` and a
        cross-encoder's margins for the same pairs (the row's label).

        This is the Walmart recipe applied to the bi-encoder teacher: a cross-encoder, which reads query and item
        together, labels the (query, item) pairs the bi-encoder trains on, including the mined negatives no human
        judged, and the bi-encoder learns its margins (Hofstätter et al.'s Margin-MSE) beside the human
        positives. A mined "negative" the cross-encoder finds as relevant as the positive stops being pushed
        away. sentence-transformers has both terms (``MultipleNegativesRankingLoss``, ``MarginMSELoss``) but no
        loss that adds them over one encoding of the batch, hence this subclass: the columns are encoded once
        and both terms read the same embeddings.

        Args:
            model: the bi-encoder being trained (normalised embeddings: cosine scores).
            scale: inverse temperature of the InfoNCE, also the factor that puts the bi-encoder's cosine margins
                in the units of the labels.
            margin_weight: weight of the Margin-MSE term (0: the InfoNCE alone).

        References:
            - Lin et al., Enhancing Relevance of Embedding-based Retrieval at Walmart (CIKM 2024): a
              cross-encoder relevance teacher distilled into the retrieval model through score margins.
            - Hofstätter et al., Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
              Distillation (2020): Margin-MSE.

        Inputs:
            ``anchor, positive, negative_1..n`` texts and a label of ``n`` margins per row, the cross-encoder's
            ``score(anchor, positive) - score(anchor, negative_i)`` in the units of ``scale * cosine``.

        Example:
            ::

                loss = ContrastiveMarginMSELoss(teacher, scale=20.0, margin_weight=1.0)
                # dataset columns: anchor, positive, negative_1, label (a list of one margin per negative)
        """
        super().__init__(model, scale=scale)
        if margin_weight < 0:
            raise ValueError(f"margin_weight must be >= 0, got {margin_weight}")
        self.margin_weight = margin_weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        loss = self.compute_loss_from_embeddings(embeddings, labels)
        if self.margin_weight == 0 or labels is None:
            return loss
        if len(embeddings) < 3:
            raise ValueError("the margin term needs at least one negative column beside anchor and positive")
        return loss + self.margin_weight * self.margin_loss(embeddings, labels)

    def margin_loss(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Mean squared gap between ``scale * (cos(a, p) - cos(a, n_i))`` and the labelled margins."""
        anchor, positive, negatives = embeddings[0], embeddings[1], embeddings[2:]
        pos = functional.cosine_similarity(anchor, positive, dim=-1)
        margins = torch.stack([pos - functional.cosine_similarity(anchor, neg, dim=-1) for neg in negatives], 1)
        labels = labels.to(margins.dtype).view(margins.shape[0], -1)
        if labels.shape[1] != margins.shape[1]:
            raise ValueError(f"{labels.shape[1]} labelled margins per row but {margins.shape[1]} negative columns")
        return functional.mse_loss(self.scale * margins, labels)

    def get_config_dict(self) -> dict[str, Any]:
        return super().get_config_dict() | {"margin_weight": self.margin_weight}

"""A graph regulariser beside the contrastive loss: items that are neighbours in the judgments' query-item graph
are pulled together (RAMEN), at no inference cost."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from harnesslm.losses.adversarial_contrastive import view_contrast

NEIGHBOR_COLUMN = "neighbor"
"""The dataset column holding each row's graph neighbour of its positive item (the last column)."""


class GraphRegularizedLoss(nn.Module):
    def __init__(
        self, model: SentenceTransformer, loss: nn.Module, weight: float = 0.1, temperature: float = 0.05
    ) -> None:
        """``loss`` over every column but the last, plus ``weight`` times an InfoNCE that makes each row's
        positive item find its graph neighbour (the last column) among the batch's neighbours.

        The graph is the judgments' bipartite query-item graph: two items are neighbours when some query judged
        both relevant. Pulling neighbours together regularises the encoder with what the graph knows (items
        that satisfy the same need) without any change at inference: the encoder alone serves, as before. RAMEN
        regularises with the metadata graph of the catalog; a shop without one still has this graph. No library
        ships such a term for sentence-transformers, hence this module; it costs two more forward passes per
        batch (the positives again, and the neighbours).

        Args:
            model: the encoder being trained.
            loss: the base loss over the other columns (e.g. ``MultipleNegativesRankingLoss`` of ``model``).
            weight: weight of the graph term beside the base loss (0 turns it off).
            temperature: softmax temperature of the positive-to-neighbour InfoNCE.

        References:
            - RAMEN: graph-regularised encoder training with metadata graphs (the recipe's neighbour: a graph
              regulariser during training, no graph at inference).

        Inputs:
            The base loss's columns, then ``neighbor`` (for the teacher: ``anchor, positive, negative_1..n,
            neighbor``); no labels.

        Example:
            ::

                base = MultipleNegativesRankingLoss(teacher, scale=20.0)
                loss = GraphRegularizedLoss(teacher, base, weight=0.1)
        """
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.model = model
        self.loss = loss
        self.weight = weight
        self.temperature = temperature

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        if len(features) < 3:
            raise ValueError("the graph regulariser needs the base loss's columns and a neighbour column")
        base = self.loss(features[:-1], labels)
        if self.weight == 0:
            return base
        # the positives are encoded again rather than read off the base loss's passes: a loss may encode its
        # columns together (sentence-transformers' MultipleNegativesRankingLoss concatenates the documents)
        positives = self.model(features[1])["sentence_embedding"]
        neighbors = self.model(features[-1])["sentence_embedding"]
        return base + self.weight * view_contrast(positives, neighbors, self.temperature)


def item_neighbors(positives_by_query: Mapping[str, set[str]], positives: Sequence[str], seed: int = 0) -> list[str]:
    """For each positive item, one graph neighbour: another item judged relevant for a query it is relevant
    for, drawn at random (``seed``); the item itself when no query judged another one relevant beside it."""
    by_item: dict[str, set[str]] = {}
    for items in positives_by_query.values():
        for item in items:
            by_item.setdefault(item, set()).update(items - {item})
    rng = random.Random(seed)
    return [rng.choice(sorted(by_item[item])) if by_item.get(item) else item for item in positives]

"""What the loss tests share: a stand-in for a sentence-transformers model, a row normaliser, and the queries and
relevant items the teacher-loss tests train a tiny encoder on."""

from __future__ import annotations

import torch
from torch import nn


class FixedQueries(nn.Module):
    """Stands in for a sentence-transformers model: returns ``base`` as the (unnormalised) embeddings."""

    def __init__(self, base: torch.Tensor) -> None:
        super().__init__()
        self.base = nn.Parameter(base.clone())

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"sentence_embedding": self.base}


def unit(x: torch.Tensor) -> torch.Tensor:
    """Each row scaled to length 1."""
    return x / x.norm(dim=-1, keepdim=True)


ANCHORS = ["cordless drill", "paint roller", "garden hose", "led bulb"]
"""Queries of the teacher-loss tests (one batch)."""
POSITIVES = ["dewalt 20v cordless drill kit", "9 in paint roller cover", "50 ft garden hose", "60w led light bulb"]
"""Each query's relevant item, row by row."""

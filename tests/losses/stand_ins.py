"""What the frozen-item loss tests share: a stand-in for a sentence-transformers model and a row normaliser."""

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

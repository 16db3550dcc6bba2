"""A student's head: the linear projection (a ``Dense`` saved inside the model folder) that maps its pooled
embedding into the teacher's space, so it searches the teacher's item index directly: nothing is re-indexed."""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense


def projection_head(in_dim: int, out_dim: int) -> Dense:
    """A linear map (no activation) initialised to the identity on the shared dimensions."""
    dense = Dense(in_dim, out_dim, bias=True, activation_function=None)
    with torch.no_grad():
        dense.linear.weight.zero_()
        dense.linear.bias.zero_()
        shared = min(in_dim, out_dim)
        dense.linear.weight[:shared, :shared] = torch.eye(shared)
    return dense


def projection_of(student: SentenceTransformer) -> Dense | None:
    """The student's projection module, if it has one."""
    return next((m for m in student if isinstance(m, Dense)), None)

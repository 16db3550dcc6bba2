"""Dense x semi-structured sparse factorisation of a student's linear layers (DSFormer), trained straight through.

Each ``nn.Linear`` weight ``W`` (out x in) becomes ``D @ S``: a small dense ``D`` (out x r) times an ``S`` (r x in)
of which only 2 of every 4 consecutive weights per row are kept (the 2:4 pattern sparse tensor cores run).
Both start from the truncated SVD of ``W``; during training the forward pass keeps the 2 largest of each group of
4 in ``S``, and the gradient reaches every entry of ``S`` as if nothing were pruned (the straight-through
factoriser), so the mask can change as the weights move. :func:`materialize` writes ``D @ S`` back into plain
``nn.Linear`` layers, so the result saves and loads as any sentence-transformers model.

What it buys depends on kernels: 2:4 sparse matrix products exist for NVIDIA GPUs (``torch.sparse`` semi-structured,
CUDA only). On a CPU no 2:4 kernel exists in torch, so ``D @ S`` runs as dense products: the factorisation only
saves time when ``r`` is small enough that ``x @ S.T @ D.T`` costs less than ``x @ W.T`` (r < out * in / (out + in)).
No library ships the factoriser, hence this module.

References:
    - DSFormer: effective compression of text-transformers by dense-sparse weight factorization (the Straight-
      Through Factorizer, dense x semi-structured sparse).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def two_four_mask(weight: Tensor) -> Tensor:
    """A 0/1 mask keeping the 2 largest-magnitude weights of every 4 consecutive ones in each row (the last group
    of a row whose length is not a multiple of 4 keeps half of its weights, rounded up)."""
    rows, cols = weight.shape
    padded = -(-cols // 4) * 4
    magnitude = torch.zeros(rows, padded, dtype=weight.dtype, device=weight.device)
    magnitude[:, :cols] = weight.detach().abs()
    magnitude[:, cols:] = -1.0  # padding is never kept
    groups = magnitude.view(rows, -1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(2, dim=2).indices, True)
    return keep.view(rows, padded)[:, :cols].to(weight.dtype)


class DenseSparseLinear(nn.Module):
    """``y = x @ (D @ (S * mask(S))).T + b``, with the straight-through gradient for ``S``."""

    def __init__(self, linear: nn.Linear, rank: int) -> None:
        super().__init__()
        out_features, in_features = linear.weight.shape
        if not 1 <= rank <= min(out_features, in_features):
            raise ValueError(f"rank must be in [1, {min(out_features, in_features)}], got {rank}")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        u, s, vh = torch.linalg.svd(linear.weight.detach().float(), full_matrices=False)
        root = s[:rank].sqrt()
        self.dense = nn.Parameter((u[:, :rank] * root).to(linear.weight.dtype))
        self.sparse = nn.Parameter((root[:, None] * vh[:rank]).to(linear.weight.dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def sparse_weight(self) -> Tensor:
        """``S`` pruned to 2:4 in the forward pass, unpruned in the backward pass (straight through)."""
        pruned = self.sparse * two_four_mask(self.sparse)
        return self.sparse + (pruned - self.sparse).detach()

    def weight(self) -> Tensor:
        return self.dense @ self.sparse_weight()

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight(), self.bias)

    def parameters_kept(self) -> int:
        """Weights a 2:4 kernel stores: all of ``D``, half of ``S`` (plus the bias)."""
        bias = 0 if self.bias is None else self.bias.numel()
        return self.dense.numel() + self.sparse.numel() // 2 + bias


def factorize(model: nn.Module, rank_ratio: float, min_features: int = 64) -> dict[str, int]:
    """Replace every ``nn.Linear`` of ``model`` with at least ``min_features`` inputs and outputs by a
    :class:`DenseSparseLinear` of rank ``round(rank_ratio * min(out, in))``, in place; returns each replaced
    layer's name and rank. Embeddings, norms and small heads stay as they are."""
    if not 0 < rank_ratio <= 1:
        raise ValueError(f"rank_ratio must be in (0, 1], got {rank_ratio}")
    ranks: dict[str, int] = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and min(child.in_features, child.out_features) >= min_features:
                rank = max(1, round(rank_ratio * min(child.in_features, child.out_features)))
                setattr(module, child_name, DenseSparseLinear(child, rank))
                ranks[f"{name}.{child_name}" if name else child_name] = rank
    return ranks


def materialize(model: nn.Module) -> int:
    """Write each :class:`DenseSparseLinear` back as a plain ``nn.Linear`` holding ``D @ (S * mask)``, in place, so
    the model saves and loads without this module; returns how many layers were written back."""
    count = 0
    for _, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, DenseSparseLinear):
                linear = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                with torch.no_grad():
                    linear.weight.copy_(child.weight())
                    if child.bias is not None:
                        linear.bias.copy_(child.bias)
                setattr(module, child_name, linear)
                count += 1
    return count

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

import copy

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
    """``y = x @ (D @ (S * mask(S))).T + b``, with the straight-through gradient for ``S``; with
    ``two_four=False``, ``S`` stays dense: the plain low-rank factoriser DSFormer is compared with."""

    def __init__(self, linear: nn.Linear, rank: int, two_four: bool = True) -> None:
        super().__init__()
        self.two_four = two_four
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
        if not self.two_four:
            return self.sparse
        pruned = self.sparse * two_four_mask(self.sparse)
        return self.sparse + (pruned - self.sparse).detach()

    def weight(self) -> Tensor:
        return self.dense @ self.sparse_weight()

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight(), self.bias)

    def parameters_kept(self) -> int:
        """Weights a kernel stores: all of ``D`` and of a dense ``S``, half of a 2:4 one (plus the bias)."""
        bias = 0 if self.bias is None else self.bias.numel()
        return self.dense.numel() + self.sparse.numel() // (2 if self.two_four else 1) + bias


def matched_low_rank(out_features: int, in_features: int, rank: int) -> int:
    """The rank of a dense low-rank factorisation that keeps as many weights as a 2:4 one of ``rank``:
    ``r' (out + in) = r (out + in / 2)``, so the two factorisers are compared at one size."""
    return max(1, round(rank * (out_features + in_features / 2) / (out_features + in_features)))


def factorize(model: nn.Module, rank_ratio: float, min_features: int = 64, two_four: bool = True) -> dict[str, int]:
    """Replace every ``nn.Linear`` of ``model`` with at least ``min_features`` inputs and outputs by a
    :class:`DenseSparseLinear` of rank ``round(rank_ratio * min(out, in))``, in place; returns each replaced
    layer's name and rank. Embeddings, norms and small heads stay as they are. ``two_four=False`` gives the
    plain low-rank factoriser at the rank that keeps as many weights (:func:`matched_low_rank`)."""
    if not 0 < rank_ratio <= 1:
        raise ValueError(f"rank_ratio must be in (0, 1], got {rank_ratio}")
    ranks: dict[str, int] = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and min(child.in_features, child.out_features) >= min_features:
                rank = max(1, round(rank_ratio * min(child.in_features, child.out_features)))
                if not two_four:
                    rank = matched_low_rank(child.out_features, child.in_features, rank)
                setattr(module, child_name, DenseSparseLinear(child, rank, two_four))
                ranks[f"{name}.{child_name}" if name else child_name] = rank
    return ranks


def materialize(model: nn.Module, factored: bool = False) -> int:
    """Write each :class:`DenseSparseLinear` back as plain layers, in place; returns how many were written.

    By default one ``nn.Linear`` holding ``D @ (S * mask)``, so the model saves and loads without this module
    (and runs exactly as fast as before). With ``factored``, two: ``x -> S * mask`` (no bias) then ``-> D`` (with
    the bias), the form that saves time on a CPU when the rank is small, since no 2:4 kernel runs there; it
    runs in this process (a Hugging Face config cannot describe it, so it does not save as the same model).
    """
    count = 0
    for _, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, DenseSparseLinear):
                setattr(module, child_name, _factored(child) if factored else _merged(child))
                count += 1
    return count


def _merged(layer: DenseSparseLinear) -> nn.Linear:
    linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(layer.weight())
        if layer.bias is not None:
            linear.bias.copy_(layer.bias)
    return linear


def _factored(layer: DenseSparseLinear) -> nn.Sequential:
    first = nn.Linear(layer.in_features, layer.rank, bias=False)
    second = nn.Linear(layer.rank, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_(layer.sparse_weight())
        second.weight.copy_(layer.dense)
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def factorize_student(student: nn.Module, rank_ratio: float, two_four: bool = True) -> dict[str, int]:
    """Factorise the linear layers of a sentence-transformers student's transformer (its first module), in
    place; the pooling and projection head stay dense. A student already factorised is left as it is (it has
    no plain linear layer left to replace), so alignment and refinement may both call it."""
    if rank_ratio <= 0:
        return {}
    return factorize(student[0].auto_model, rank_ratio, two_four=two_four)


def written_back(model: nn.Module) -> nn.Module:
    """``model`` itself when it has no :class:`DenseSparseLinear`; else a copy with each written back as one plain
    ``nn.Linear`` (:func:`materialize`), the form that saves and loads as any model. ``model`` keeps training."""
    if not any(isinstance(m, DenseSparseLinear) for m in model.modules()):
        return model
    out = copy.deepcopy(model)
    materialize(out)
    return out

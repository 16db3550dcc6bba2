"""Learning-to-rank objectives on padded candidate lists, shared by the bi-encoder and cross-encoder losses.

Every listwise/pairwise function takes three ``(batch, list_size)`` tensors:

- ``scores``: the model's scores (logits; higher = more relevant),
- ``labels``: graded relevance labels or teacher scores (higher = more relevant),
- ``mask``: bool, ``True`` for a real candidate, ``False`` for padding. Padded entries never affect the loss
  or its gradient, whatever their score or label.

Each returns the mean over the *queries that carry a ranking signal*: a query is skipped when it has fewer than
two real candidates or when all its labels are equal (no ordering to learn: pairwise losses have no pair,
ListMLE's permutation would be pure tie-breaking, ListNet's target would be uniform). The NDCG-based objectives
(approxNDCG, LambdaLoss) also skip a query whose ideal DCG is 0 (no label above 0), where NDCG is undefined.
If no query counts, the result is a zero that is still attached to the graph (``backward`` works).

NDCG gains are ``2 ** label - 1`` with labels clamped at 0 (as sentence-transformers' ``LambdaLoss`` does), so
negative labels count as irrelevant: rescale raw teacher scores (e.g. min-max to ``[0, 3]``) before using them
as graded labels in the NDCG-based objectives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional

LambdaWeighting = Literal["ndcg_loss2pp", "ndcg_loss2", "lambdarank"]


def _prepare(scores: Tensor, labels: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Float32+ copies with padded entries zeroed (finite everywhere, so masked maths never makes NaN grads)."""
    if scores.dim() != 2 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must both be (batch, list_size), got {scores.shape} and {labels.shape}")
    mask = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.to(scores.device, torch.bool)
    if mask.shape != scores.shape:
        raise ValueError(f"mask must have the shape of scores {scores.shape}, got {mask.shape}")
    dtype = torch.promote_types(scores.dtype, torch.float32)
    scores = scores.to(dtype).masked_fill(~mask, 0.0)
    labels = labels.to(scores.device, dtype).masked_fill(~mask, 0.0)
    return scores, labels, mask


def _informative(labels: Tensor, mask: Tensor) -> Tensor:
    """``(batch,)`` bool: at least two real candidates with at least two different labels."""
    highest = labels.masked_fill(~mask, -math.inf).amax(dim=1)
    lowest = labels.masked_fill(~mask, math.inf).amin(dim=1)
    return (mask.sum(dim=1) >= 2) & (highest > lowest)


def _mean_over_queries(per_query: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``per_query`` over the valid queries; a graph-attached 0 when there are none."""
    kept = torch.where(valid, per_query, torch.zeros_like(per_query))
    return kept.sum() / valid.sum().clamp(min=1)


def _gains(labels: Tensor, mask: Tensor) -> Tensor:
    """NDCG gains ``2 ** max(label, 0) - 1``, 0 on padding."""
    return (torch.pow(2.0, labels.clamp(min=0.0)) - 1.0) * mask


def _discounts(list_size: int, like: Tensor) -> Tensor:
    """``log2(1 + rank)`` for ranks ``1 .. list_size``."""
    ranks = torch.arange(1, list_size + 1, device=like.device, dtype=like.dtype)
    return torch.log2(1.0 + ranks)


def _standardized(scores: Tensor, mask: Tensor, eps: float = 1e-3) -> Tensor:
    """Each list's real scores centred and divided by their (population) std + ``eps``; padding stays 0."""
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (scores * mask).sum(dim=1, keepdim=True) / count
    centred = (scores - mean) * mask
    std = torch.sqrt((centred**2).sum(dim=1, keepdim=True) / count)
    return centred / (std + eps)


def _ideal_dcg(gains: Tensor, k: int | None = None) -> Tensor:
    """DCG(@k) of the label-sorted list, per query."""
    ideal = gains.sort(dim=1, descending=True).values / _discounts(gains.shape[1], gains)
    return ideal[:, :k].sum(dim=1)


def approx_ndcg_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    alpha: float = 10.0,
    standardize: bool = False,
) -> Tensor:
    """``1 - approxNDCG``: NDCG with each rank replaced by a smooth, differentiable rank.

    The rank of candidate ``i`` is approximated by ``1 + sum_{j != i} sigmoid(alpha * (s_j - s_i))`` (each term
    is the soft indicator "``j`` outranks ``i``"); ``approxDCG = sum_i (2^y_i - 1) / log2(1 + rank_i)``, divided by
    the exact ideal DCG. As ``alpha`` grows the soft ranks become the exact ranks and the loss tends to
    ``1 - NDCG``; ``alpha`` acts on the scores as given, so it multiplies any temperature already applied to them.

    ``standardize``: centre each list's scores and divide them by their standard deviation (plus ``1e-3``)
    before the smooth ranks. The discount ``1 / log2(1 + rank)`` is convex, so with unbounded scores (cross-encoder
    logits) the loss falls by spreading scores apart *in any order*: the model inflates its scale, every sigmoid
    saturates and the order stops being learned. On standardised scores only the order and the relative gaps count.

    References:
        - Qin, Liu & Li, A general approximation framework for direct optimization of information retrieval
          measures, Information Retrieval 13(4), 2010.
        - Bruch, Zoghi, Bendersky & Najork, Revisiting approximate metric optimization in the age of deep neural
          networks, SIGIR 2019.
    """
    scores, labels, mask = _prepare(scores, labels, mask)
    if standardize:
        scores = _standardized(scores, mask)
    list_size = scores.shape[1]
    # differences[b, i, j] = s_j - s_i: positive when j is ranked above i
    differences = scores[:, None, :] - scores[:, :, None]
    others = mask[:, None, :] & ~torch.eye(list_size, dtype=torch.bool, device=scores.device)
    ranks = 1.0 + (torch.sigmoid(alpha * differences) * others).sum(dim=-1)
    gains = _gains(labels, mask)
    dcg = (gains / torch.log2(1.0 + ranks)).sum(dim=1)
    ideal = _ideal_dcg(gains)
    valid = _informative(labels, mask) & (ideal > 0)
    per_query = 1.0 - dcg / ideal.clamp(min=torch.finfo(ideal.dtype).tiny)
    return _mean_over_queries(per_query, valid)


def listnet_loss(scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """ListNet (top-one): cross-entropy ``-sum_i softmax(labels)_i * log softmax(scores)_i`` over real candidates.

    Labels enter a softmax, so their scale is a temperature: teacher scores in ``[0, 1]`` give a nearly uniform
    target; multiply them (e.g. by ``1 / 0.05``) to sharpen it.

    References:
        - Cao, Qin, Liu, Tsai & Li, Learning to rank: from pairwise approach to listwise approach, ICML 2007.
    """
    scores, labels, mask = _prepare(scores, labels, mask)
    valid = _informative(labels, mask)
    # rows without any real candidate act as all-real (on the zeroed values) so every logsumexp stays finite
    live = mask | ~mask.any(dim=1, keepdim=True)
    log_probs = scores - torch.logsumexp(scores.masked_fill(~live, -math.inf), dim=1, keepdim=True)
    target = torch.softmax(labels.masked_fill(~live, -math.inf), dim=1)
    per_query = -(target * log_probs * live).sum(dim=1)
    return _mean_over_queries(per_query, valid)


def listmle_loss(scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """ListMLE: negative Plackett-Luce log-likelihood of the permutation that sorts candidates by label.

    ``-sum_k [s_(k) - log sum_{m >= k} exp(s_(m))]`` with ``(k)`` the k-th candidate by descending label. Ties are
    broken deterministically by list position: of two candidates with equal labels, the one listed first is taken
    to rank higher (a stable sort), so order tied candidates meaningfully (e.g. by teacher rank) if ties are common.

    References:
        - Xia, Liu, Wang, Zhang & Li, Listwise approach to learning to rank: theory and algorithm, ICML 2008.
    """
    scores, labels, mask = _prepare(scores, labels, mask)
    valid = _informative(labels, mask)
    list_size = scores.shape[1]
    order = labels.masked_fill(~mask, -math.inf).argsort(dim=1, descending=True, stable=True)  # padding last
    sorted_scores = scores.gather(1, order)
    sorted_mask = mask.gather(1, order)
    # suffix[b, k, m]: m is in the Plackett-Luce normaliser of position k (real and at or after k); the diagonal
    # is always kept so a padded position normalises over itself and stays finite
    positions = torch.arange(list_size, device=scores.device)
    at_or_after = positions[None, :] >= positions[:, None]
    suffix = (at_or_after & sorted_mask[:, None, :]) | torch.eye(list_size, dtype=torch.bool, device=scores.device)
    normalisers = torch.logsumexp(sorted_scores[:, None, :].masked_fill(~suffix, -math.inf), dim=-1)
    per_query = -((sorted_scores - normalisers) * sorted_mask).sum(dim=1)
    return _mean_over_queries(per_query, valid)


def _lambda_weights(list_size: int, like: Tensor, weighting: LambdaWeighting, mu: float) -> Tensor:
    """``(list_size, list_size)`` rank-position weights of the LambdaLoss paper (to multiply by ``|G_i - G_j|``)."""
    inverse = 1.0 / _discounts(list_size, like)  # 1 / D_r for r = 1 .. L
    # rho_ij = |1/D_i - 1/D_j|: the LambdaRank weight
    rho = (inverse[:, None] - inverse[None, :]).abs()
    # delta_ij = |1/D_|i-j| - 1/D_(|i-j|+1)| (NDCG-Loss2); 0 on the diagonal
    positions = torch.arange(list_size, device=like.device)
    gap = (positions[:, None] - positions[None, :]).abs()
    gap_inverse = 1.0 / torch.log2(1.0 + gap.clamp(min=1).to(like.dtype))
    next_inverse = 1.0 / torch.log2(2.0 + gap.clamp(min=1).to(like.dtype))
    delta = (gap_inverse - next_inverse).abs() * (gap > 0)
    if weighting == "ndcg_loss2pp":
        return mu * delta + rho
    if weighting == "ndcg_loss2":
        return delta
    if weighting == "lambdarank":
        return rho
    raise ValueError(f"unknown LambdaLoss weighting {weighting!r}; use 'ndcg_loss2pp', 'ndcg_loss2' or 'lambdarank'")


def lambda_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    weighting: LambdaWeighting = "ndcg_loss2pp",
    mu: float = 10.0,
    sigma: float = 1.0,
    k: int | None = None,
) -> Tensor:
    """LambdaLoss: NDCG-weighted pairwise logistic loss over the pairs with ``label_i > label_j``.

    Candidates are placed at their *predicted* ranks ``1..n`` (descending score). Each pair with
    ``y_i > y_j`` costs ``-w_ij * log2 sigmoid(sigma * (s_i - s_j))`` with ``w_ij = weight(i, j) * |G_i - G_j|``,
    ``G = (2^y - 1) / idealDCG``, ``D_r = log2(1 + r)`` and

    - ``"ndcg_loss2pp"`` (default, NDCG-Loss2++): ``mu * delta_ij + rho_ij``,
    - ``"ndcg_loss2"``: ``delta_ij = |1/D_|i-j| - 1/D_(|i-j|+1)|``,
    - ``"lambdarank"``: ``rho_ij = |1/D_i - 1/D_j|``.

    A query's loss is the mean over its pairs; ``k`` keeps only pairs with a candidate in the predicted top k
    (and the ideal DCG at k). This is the maths of sentence-transformers' cross-encoder ``LambdaLoss`` (binary
    log), except that it averages pairs per query and then queries, where that one averages all pairs of a batch,
    and that tied scores keep their list order (stable sort) when placed at predicted ranks.

    References:
        - Wang, Li, Golbandi, Bendersky & Najork, The LambdaLoss framework for ranking metric optimization,
          CIKM 2018.
    """
    scores, labels, mask = _prepare(scores, labels, mask)
    list_size = scores.shape[1]
    order = scores.detach().masked_fill(~mask, -math.inf).argsort(dim=1, descending=True, stable=True)
    sorted_scores, sorted_labels, sorted_mask = scores.gather(1, order), labels.gather(1, order), mask.gather(1, order)
    pairs = sorted_mask[:, :, None] & sorted_mask[:, None, :] & (sorted_labels[:, :, None] > sorted_labels[:, None, :])
    if k is not None:
        in_top = torch.arange(list_size, device=scores.device) < k
        pairs = pairs & (in_top[:, None] | in_top[None, :])
    gains = _gains(sorted_labels, sorted_mask)
    ideal = _ideal_dcg(gains, k)
    normalised = gains / ideal.clamp(min=torch.finfo(ideal.dtype).tiny)[:, None]
    weights = (
        _lambda_weights(list_size, scores, weighting, mu) * (normalised[:, :, None] - normalised[:, None, :]).abs()
    )
    differences = sorted_scores[:, :, None] - sorted_scores[:, None, :]
    costs = -weights * functional.logsigmoid(sigma * differences) / math.log(2.0)
    per_query = (costs * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp(min=1)
    valid = _informative(labels, mask) & (ideal > 0)
    return _mean_over_queries(per_query, valid)


def ranknet_loss(scores: Tensor, labels: Tensor, mask: Tensor | None = None, sigma: float = 1.0) -> Tensor:
    """RankNet: unweighted pairwise logistic loss ``log(1 + exp(-sigma (s_i - s_j)))`` over pairs ``y_i > y_j``.

    Natural log, mean over a query's pairs, then over queries. It equals sentence-transformers' cross-encoder
    ``RankNetLoss(reduction_log="natural")`` on one query.

    References:
        - Burges, Shaked, Renshaw, Lazier, Deeds, Hamilton & Hullender, Learning to rank using gradient descent,
          ICML 2005.
    """
    scores, labels, mask = _prepare(scores, labels, mask)
    pairs = mask[:, :, None] & mask[:, None, :] & (labels[:, :, None] > labels[:, None, :])
    costs = functional.softplus(-sigma * (scores[:, :, None] - scores[:, None, :]))
    per_query = (costs * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp(min=1)
    return _mean_over_queries(per_query, _informative(labels, mask))


def margin_mse_loss(score_a: Tensor, score_b: Tensor, target_margin: Tensor) -> Tensor:
    """Margin-MSE: mean of ``((s_a - s_b) - target_margin) ** 2``, the teacher's margin on the same two candidates.

    Only the *difference* of the student's scores is matched, so the student may keep its own score offset.

    References:
        - Hofstätter, Althammer, Schröder, Sertkan & Hanbury, Improving efficient neural ranking models with
          cross-architecture knowledge distillation, arXiv:2010.02666, 2020.
    """
    margin = score_a - score_b
    return functional.mse_loss(margin, target_margin.to(margin.device, margin.dtype))


ListObjective = Callable[..., Tensor]

LIST_OBJECTIVES: dict[str, ListObjective] = {
    "approx_ndcg": approx_ndcg_loss,
    "listnet": listnet_loss,
    "listmle": listmle_loss,
    "lambdaloss": lambda_loss,
    "ranknet": ranknet_loss,
}
"""The listwise/pairwise objectives by name, each ``f(scores, labels, mask, **options) -> Tensor``."""

"""The dense weight of a hybrid (dense + BM25, fused by ``harnesslm.index.fusion``), chosen on validation.

The weight is picked on validation queries by NDCG@10, never on the test split, and evaluation, the Python
API and the service all fuse with the weight picked here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.fusion import fuse_all

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
"""Dense weights tried on validation, 0 (BM25 alone) to 1 (dense alone)."""


def choose_weight(
    queries: Sequence[str],
    dense: Sequence[Sequence[str]],
    lexical: Sequence[Sequence[str]],
    qrels: Mapping[str, Mapping[str, float]],
    scale: RelevanceScale,
    depth: int,
    weights: Sequence[float] = WEIGHTS,
) -> tuple[float, dict[float, float]]:
    """The dense weight with the best NDCG@10 on these (validation) queries, and every weight's NDCG@10.

    Ties go to the larger weight: with no gain from BM25, the dense ranking is kept as it is.
    """
    if not queries:
        raise ValueError("choosing a fusion weight needs validation queries")
    scores = {}
    for weight in weights:
        fused = fuse_all(dense, lexical, weight, depth)
        report = evaluate_rankings(dict(zip(queries, fused, strict=True)), qrels, scale)
        scores[weight] = report.means["ndcg@10"]
    best = max(scores, key=lambda w: (scores[w], w))
    return best, scores

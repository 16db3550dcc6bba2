"""Hybrid retrieval: a dense ranking and a lexical (BM25) one fused by weighted reciprocal-rank fusion.

Product search never runs on dense retrieval alone: BM25 finds the exact part numbers, sizes and brand words
that an embedding blurs, and the two fail on different queries. Reciprocal-rank fusion (Cormack, Clarke and
Buettcher, SIGIR 2009) needs no score calibration between the two: an item scores
``w / (k + dense rank) + (1 - w) / (k + lexical rank)`` (ranks from 1; an item missing from a list adds 0).
The weight ``w`` is chosen on validation queries (:func:`choose_weight`), never on the test split.

Written here because neither FAISS nor bm25s fuses rankings, and the formula is four lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings

RRF_K = 60
"""The rank offset of Cormack et al.: large enough that the top few ranks of either list do not dominate."""
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
"""Dense weights tried on validation, 0 (BM25 alone) to 1 (dense alone)."""


def fuse(dense: Sequence[str], lexical: Sequence[str], weight: float, depth: int, k: int = RRF_K) -> list[str]:
    """The top ``depth`` item ids of one query after weighted reciprocal-rank fusion (ties keep dense order)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the dense weight must be in [0, 1], got {weight}")
    scores: dict[str, float] = {}
    for rank, item in enumerate(dense, start=1):
        scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    for rank, item in enumerate(lexical, start=1):
        scores[item] = scores.get(item, 0.0) + (1.0 - weight) / (k + rank)
    order = {item: i for i, item in enumerate([*dense, *lexical])}  # first appearance breaks ties
    return sorted(scores, key=lambda item: (-scores[item], order[item]))[:depth]


def fuse_all(
    dense: Sequence[Sequence[str]], lexical: Sequence[Sequence[str]], weight: float, depth: int
) -> list[list[str]]:
    """:func:`fuse` for every query (the two lists of rankings are in the same query order)."""
    if len(dense) != len(lexical):
        raise ValueError(f"{len(dense)} dense rankings but {len(lexical)} lexical ones")
    return [fuse(d, lex, weight, depth) for d, lex in zip(dense, lexical, strict=True)]


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

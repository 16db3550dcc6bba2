"""Hybrid retrieval: a dense ranking and a lexical (BM25) one fused by weighted reciprocal-rank fusion.

Product search never runs on dense retrieval alone: BM25 finds the exact part numbers, sizes and brand words
that an embedding blurs, and the two fail on different queries. Reciprocal-rank fusion (Cormack, Clarke and
Buettcher, SIGIR 2009) needs no score calibration between the two: an item scores
``w / (k + dense rank) + (1 - w) / (k + lexical rank)`` (ranks from 1; an item missing from a list adds 0).
The weight ``w`` is chosen on validation queries (``harnesslm.evaluation.fusion_weight.choose_weight``), never on the
test split; evaluation, the Python API and the service fuse with the same function.

What fusion does to Recall@``FUSION_DEPTH``: an item only BM25 found, at its rank 1, outscores the dense list's
last item when ``(1 - w) / (k + 1) > w / (k + depth)``, that is for ``w < (k + depth) / (2k + depth + 1)``
(0.724 at k=60, depth 100). From that weight up the fused top-100 is the dense top-100 reordered and Recall@100
cannot change; below it BM25's best items enter the top 100 (``benchmarks/hybrid_recall.py`` measures it).

Written here because neither FAISS nor bm25s fuses rankings, and the formula is four lines.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60
"""The rank offset of Cormack et al.: large enough that the top few ranks of either list do not dominate."""
FUSION_DEPTH = 100
"""How deep each list is read before fusing: the depth the weight is chosen at in evaluation (Recall@100)."""


def fuse_scored(
    dense: Sequence[str], lexical: Sequence[str], weight: float, depth: int, k: int = RRF_K
) -> list[tuple[str, float]]:
    """The top ``depth`` (item id, fused score) of one query, best first (ties keep dense order)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the dense weight must be in [0, 1], got {weight}")
    scores: dict[str, float] = {}
    for rank, item in enumerate(dense, start=1):
        scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    for rank, item in enumerate(lexical, start=1):
        scores[item] = scores.get(item, 0.0) + (1.0 - weight) / (k + rank)
    order = {item: i for i, item in enumerate([*dense, *lexical])}  # first appearance breaks ties
    ranked = sorted(scores, key=lambda item: (-scores[item], order[item]))[:depth]
    return [(item, scores[item]) for item in ranked]


def fuse(dense: Sequence[str], lexical: Sequence[str], weight: float, depth: int, k: int = RRF_K) -> list[str]:
    """The top ``depth`` item ids of one query after weighted reciprocal-rank fusion."""
    return [item for item, _ in fuse_scored(dense, lexical, weight, depth, k)]


def fuse_all(
    dense: Sequence[Sequence[str]], lexical: Sequence[Sequence[str]], weight: float, depth: int
) -> list[list[str]]:
    """:func:`fuse` for every query (the two lists of rankings are in the same query order)."""
    if len(dense) != len(lexical):
        raise ValueError(f"{len(dense)} dense rankings but {len(lexical)} lexical ones")
    return [fuse(d, lex, weight, depth) for d, lex in zip(dense, lexical, strict=True)]

"""Hard negatives mined from the teacher's own index, never a judged positive of the query."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np

from harnesslm.index.item_index import ItemIndex


def mine_negatives(
    queries: Sequence[str],
    query_embeddings: np.ndarray,
    index: ItemIndex,
    exclude: Mapping[str, set[str]],
    n: int,
    from_rank: int = 3,
    to_rank: int = 30,
    seed: int = 0,
    ceilings: Sequence[float] | None = None,
) -> list[list[str]]:
    """For each query, ``n`` item ids sampled from ranks ``[from_rank, to_rank)`` of the index's results.

    Items in ``exclude[query]`` (its judged positives) are never returned. Skipping the very top ranks lowers
    the chance of drawing an unjudged true positive, the usual failure of naive mining (Qu et al.,
    RocketQA, 2021). With ``ceilings``, a candidate whose index score reaches its query's ceiling is skipped
    too (a margin below the positive's score, like sentence-transformers' ``mine_hard_negatives``
    ``relative_margin``): an item the teacher scores as high as a known positive is more likely an unjudged
    positive than a negative. Sampling is seeded, so the same data gives the same negatives.
    """
    if n <= 0:
        return [[] for _ in queries]
    rng = random.Random(seed)
    ranked, scores = index.search(query_embeddings, to_rank)
    if ceilings is None:
        ceilings = [np.inf] * len(queries)
    negatives = []
    for query, ids, row_scores, ceiling in zip(queries, ranked, scores, ceilings, strict=True):
        banned = exclude.get(query, set()) | {i for i, s in zip(ids, row_scores, strict=False) if s >= ceiling}
        pool = [item for item in ids[from_rank:] if item not in banned]
        if len(pool) < n:  # few candidates left: fall back to the top ranks rather than give none
            pool += [item for item in ids[:from_rank] if item not in banned and item not in pool]
        negatives.append(rng.sample(pool, min(n, len(pool))))
    return negatives

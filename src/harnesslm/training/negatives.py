"""Hard negatives for contrastive training: mined from a ranking of the catalog, never a judged positive.

Two rankers mine them. The teacher's own index (:func:`mine_negatives`) needs the whole catalog encoded by
the model being trained: for the off-the-shelf teacher, a catalog pass of its own, the slowest step of the
recipe with a large teacher. BM25 over the item texts (:func:`mine_lexical_negatives`) needs no encoding at
all; lexical hard negatives are what DPR trained on (Karpukhin et al., 2020). On Home Depot the dense miner's
negatives trained a better MiniLM teacher (+1.0 validation NDCG@10 point, ``benchmarks/teacher_negatives.py``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from harnesslm.index.item_index import ItemIndex

if TYPE_CHECKING:
    from harnesslm.index.bm25 import BM25Retriever


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
    ranked, scores = index.search(query_embeddings, to_rank)
    if ceilings is None:
        ceilings = [np.inf] * len(queries)
    banned = [
        exclude.get(query, set()) | {i for i, s in zip(ids, row_scores, strict=False) if s >= ceiling}
        for query, ids, row_scores, ceiling in zip(queries, ranked, scores, ceilings, strict=True)
    ]
    return sample_negatives(ranked, banned, n, from_rank, random.Random(seed))


def mine_lexical_negatives(
    queries: Sequence[str],
    bm25: BM25Retriever,
    exclude: Mapping[str, set[str]],
    n: int,
    from_rank: int = 3,
    to_rank: int = 30,
    seed: int = 0,
) -> tuple[list[list[str]], int]:
    """Like :func:`mine_negatives`, from BM25's ranking of the catalog texts, and how many queries were topped up.

    BM25 returns only items sharing a term with the query, so a query in a script its tokenizer does not split
    (or made of stop words) can have fewer than ``n`` candidates; it is topped up with random catalog items
    (never its positives), so that no training row is dropped for want of a negative.
    """
    if n <= 0:
        return [[] for _ in queries], 0
    rng = random.Random(seed)
    ranked = bm25.search_ids(queries, to_rank)
    banned = [exclude.get(query, set()) for query in queries]
    negatives = sample_negatives(ranked, banned, n, from_rank, rng)
    topped_up = 0
    for chosen, ban in zip(negatives, banned, strict=True):
        if len(chosen) < n:
            topped_up += 1
            chosen += _random_items(bm25.ids, n - len(chosen), ban | set(chosen), rng)
    return negatives, topped_up


def sample_negatives(
    ranked: Sequence[Sequence[str]], banned: Sequence[set[str]], n: int, from_rank: int, rng: random.Random
) -> list[list[str]]:
    """``n`` ids per ranking, sampled from rank ``from_rank`` on and never ``banned``; when too few are left
    there, the top ranks make up the difference rather than give none."""
    negatives = []
    for ids, ban in zip(ranked, banned, strict=True):
        pool = [item for item in ids[from_rank:] if item not in ban]
        if len(pool) < n:
            pool += [item for item in ids[:from_rank] if item not in ban and item not in pool]
        negatives.append(rng.sample(pool, min(n, len(pool))))
    return negatives


def _random_items(ids: Sequence[str], n: int, banned: set[str], rng: random.Random) -> list[str]:
    """Up to ``n`` distinct ids drawn at random, none of them ``banned`` (tries a bounded number of draws)."""
    chosen: list[str] = []
    for _ in range(20 * n):
        if len(chosen) == n:
            break
        item = ids[rng.randrange(len(ids))]
        if item not in banned and item not in chosen:
            chosen.append(item)
    return chosen

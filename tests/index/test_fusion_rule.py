"""The rule README states for hybrid search: from a dense weight of 160/221 up, the fused top-100 is the dense
top-100 reordered (Recall@100 cannot move); below it, BM25's best items can enter."""

from __future__ import annotations

import random

from harnesslm.index.fusion import FUSION_DEPTH, RRF_K, fuse


def _lists(seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    pool = [f"item-{i}" for i in range(400)]
    dense = rng.sample(pool, FUSION_DEPTH)
    lexical = rng.sample(pool, FUSION_DEPTH)
    return dense, lexical


def test_from_the_threshold_up_the_fused_top_100_is_the_dense_top_100() -> None:
    threshold = (RRF_K + FUSION_DEPTH) / (2 * RRF_K + FUSION_DEPTH + 1)
    assert round(threshold, 3) == 0.724
    for seed in range(20):
        dense, lexical = _lists(seed)
        for weight in (0.73, 0.8, 0.9, 1.0):
            assert set(fuse(dense, lexical, weight, FUSION_DEPTH)) == set(dense)


def test_below_the_threshold_bm25s_first_item_enters() -> None:
    dense, lexical = _lists(0)
    lexical = ["bm25-only", *lexical[1:]]
    assert "bm25-only" in fuse(dense, lexical, 0.7, FUSION_DEPTH)
    assert "bm25-only" not in fuse(dense, lexical, 0.73, FUSION_DEPTH)

"""Weighted reciprocal-rank fusion of a dense and a lexical ranking."""

import pytest

from harnesslm.index.fusion import fuse, fuse_scored


def test_fuse_is_weighted_reciprocal_rank_fusion() -> None:
    dense, lexical = ["a", "b", "c"], ["c", "d"]
    # k = 1 makes the arithmetic visible: a 0.5/2, b 0.5/3, c 0.5/4 + 0.5/2, d 0.5/3
    assert fuse(dense, lexical, 0.5, depth=4, k=1) == ["c", "a", "b", "d"]  # b and d tie: dense order first
    assert fuse(dense, lexical, 1.0, depth=3) == dense  # dense alone
    assert fuse(dense, lexical, 0.0, depth=2) == lexical  # BM25 alone (items it did not find score 0)
    assert fuse(dense, lexical, 0.5, depth=2, k=1) == ["c", "a"]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse(dense, lexical, 1.5, depth=3)


def test_fuse_scored_returns_the_fused_scores_best_first() -> None:
    fused = fuse_scored(["a", "b"], ["b", "c"], 0.5, depth=3, k=1)
    assert [item for item, _ in fused] == ["b", "a", "c"]  # b: 0.5/3 + 0.5/2 beats a: 0.5/2
    assert [round(score, 4) for _, score in fused] == [round(0.5 / 3 + 0.5 / 2, 4), 0.25, round(0.5 / 3, 4)]

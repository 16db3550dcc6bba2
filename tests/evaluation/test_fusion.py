import pytest

from harnesslm.evaluation.fusion import choose_weight, fuse, fuse_all
from harnesslm.evaluation.metrics import RelevanceScale


def test_fuse_is_weighted_reciprocal_rank_fusion() -> None:
    dense, lexical = ["a", "b", "c"], ["c", "d"]
    # k = 1 makes the arithmetic visible: a 0.5/2, b 0.5/3, c 0.5/4 + 0.5/2, d 0.5/3
    assert fuse(dense, lexical, 0.5, depth=4, k=1) == ["c", "a", "b", "d"]  # b and d tie: dense order first
    assert fuse(dense, lexical, 1.0, depth=3) == dense  # dense alone
    assert fuse(dense, lexical, 0.0, depth=2) == lexical  # BM25 alone (items it did not find score 0)
    assert fuse(dense, lexical, 0.5, depth=2, k=1) == ["c", "a"]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse(dense, lexical, 1.5, depth=3)


def test_choose_weight_picks_the_best_on_the_given_queries() -> None:
    qrels = {"q1": {"x": 3.0}, "q2": {"y": 3.0}}
    dense = [["x", "n1"], ["n2", "n3"]]  # dense finds q1's item, misses q2's
    lexical = [["n4", "x"], ["y", "n5"]]  # BM25 finds q2's item first
    weight, scores = choose_weight(["q1", "q2"], dense, lexical, qrels, RelevanceScale(), depth=10)
    assert 0.0 < weight < 1.0  # fusing beats either alone
    assert scores[weight] > max(scores[0.0], scores[1.0])
    assert fuse_all(dense, lexical, weight, depth=1) == [["x"], ["y"]]

"""The hybrid's dense weight is the one with the best validation NDCG@10."""

from harnesslm.evaluation.fusion_weight import choose_weight
from harnesslm.evaluation.metrics import RelevanceScale
from harnesslm.index.fusion import fuse_all


def test_choose_weight_picks_the_best_on_the_given_queries() -> None:
    qrels = {"q1": {"x": 3.0}, "q2": {"y": 3.0}}
    dense = [["x", "n1"], ["n2", "n3"]]  # dense finds q1's item, misses q2's
    lexical = [["n4", "x"], ["y", "n5"]]  # BM25 finds q2's item first
    weight, scores = choose_weight(["q1", "q2"], dense, lexical, qrels, RelevanceScale(), depth=10)
    assert 0.0 < weight < 1.0  # fusing beats either alone
    assert scores[weight] > max(scores[0.0], scores[1.0])
    assert fuse_all(dense, lexical, weight, depth=1) == [["x"], ["y"]]

"""Agreement with the teacher: top-k overlap and cosine summaries, checked by hand on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest

from harnesslm.evaluation.agreement import cosine_agreement, top_k_overlap


def test_top_k_overlap_by_hand() -> None:
    ours = [["a", "b", "c", "d"], ["a", "b", "c", "d"], ["x", "y"], []]
    theirs = [["d", "c", "b", "a"], ["a", "e", "f", "b"], ["y", "z"], ["a"]]
    # k=2: {a,b} & {d,c} = 0; {a,b} & {a,e} = 1; {x,y} & {y,z} = 1; nothing = 0.
    np.testing.assert_allclose(top_k_overlap(ours, theirs, k=2), [0.0, 0.5, 0.5, 0.0])
    # k=4: all four shared; a, b shared; a short ranking is not rescaled: 1 / 4.
    np.testing.assert_allclose(top_k_overlap(ours, theirs, k=4), [1.0, 0.5, 0.25, 0.0])
    assert top_k_overlap(ours, ours, k=2)[:3].tolist() == [1.0, 1.0, 1.0]


def test_top_k_overlap_needs_the_same_queries() -> None:
    with pytest.raises(ValueError, match="same queries"):
        top_k_overlap([["a"]], [["a"], ["b"]])
    with pytest.raises(ValueError, match="k must be"):
        top_k_overlap([["a"]], [["a"]], k=0)


def _unit(angles: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_cosine_stats_by_hand() -> None:
    cosines = np.array(
        [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1, 0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25]
    )
    teacher = _unit(np.zeros(len(cosines)))
    student = _unit(np.arccos(cosines))
    agreement = cosine_agreement(student, teacher)
    np.testing.assert_allclose(agreement.per_query, cosines, atol=1e-12)
    assert agreement.mean == pytest.approx(cosines.mean())
    # 20 queries: the worst decile is the 2 lowest, -0.1 and 0.0.
    assert agreement.worst_decile == pytest.approx(-0.05)
    # Sorted, the 10th percentile sits at position 0.1 * 19 = 1.9 between 0.0 and 0.1.
    assert agreement.p10 == pytest.approx(0.0 + 0.9 * 0.1)
    assert agreement.as_metrics() == {
        "cosine_mean": agreement.mean,
        "cosine_p10": agreement.p10,
        "cosine_worst_decile": agreement.worst_decile,
    }


def test_cosine_of_identical_embeddings_and_small_sets() -> None:
    embeddings = _unit(np.array([0.1, 0.7, 2.0]))
    agreement = cosine_agreement(embeddings, embeddings)
    assert agreement.mean == pytest.approx(1.0) and agreement.worst_decile == pytest.approx(1.0)
    # Three queries: the worst decile is still one query, the lowest.
    single = cosine_agreement(_unit(np.array([0.0, np.pi / 2, np.pi])), _unit(np.zeros(3)))
    assert single.worst_decile == pytest.approx(-1.0)


def test_cosine_needs_matching_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        cosine_agreement(np.ones((3, 2)), np.ones((3, 4)))

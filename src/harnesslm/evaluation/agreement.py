"""Agreement of a student with its teacher on the same queries: shared top-k results and embedding cosine.

Recovery of NDCG says how good the student's results are; agreement says how *close* they are to the
teacher's. A student that keeps 98% of NDCG@10 with a top-10 overlap of 0.5 returns different items that
happen to score the same on the judged ones, which matters for unjudged queries and for caches built on the
teacher's results. The cosine to the teacher's query embedding measures alignment directly, and its worst
decile shows the queries the student has not learned to map, which a mean hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def top_k_overlap(ours: Sequence[Sequence[str]], theirs: Sequence[Sequence[str]], k: int = 10) -> np.ndarray:
    """``|A_k ∩ B_k| / k`` per query, where ``A_k`` and ``B_k`` are the first ``k`` ids of the two rankings.

    A ranking shorter than ``k`` is not rescaled (it can only share what it returned), like P@k.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(ours) != len(theirs):
        raise ValueError(f"{len(ours)} rankings against {len(theirs)}: they must list the same queries")
    return np.array([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ours, theirs, strict=True)], dtype=np.float64)


@dataclass(frozen=True)
class CosineAgreement:
    """Per-query cosine between student and teacher query embeddings, with its summaries.

    ``p10`` is the 10th percentile (linear interpolation); ``worst_decile`` is the mean of the lowest 10% of
    queries (at least one).
    """

    per_query: np.ndarray
    mean: float
    p10: float
    worst_decile: float

    def as_metrics(self) -> dict[str, float]:
        """The keys written to metrics.json."""
        return {"cosine_mean": self.mean, "cosine_p10": self.p10, "cosine_worst_decile": self.worst_decile}


def cosine_agreement(student: np.ndarray, teacher: np.ndarray) -> CosineAgreement:
    """Row-wise cosine of two ``[n, dim]`` arrays of L2-normalised embeddings of the same ``n`` queries."""
    student, teacher = np.asarray(student, dtype=np.float64), np.asarray(teacher, dtype=np.float64)
    if student.ndim != 2 or student.shape != teacher.shape or len(student) == 0:
        raise ValueError(
            f"need two non-empty [n, dim] arrays of the same shape, got {student.shape} and {teacher.shape}"
        )
    cosines = np.einsum("ij,ij->i", student, teacher)
    worst = np.sort(cosines)[: -(-len(cosines) // 10)]  # the lowest ceil(n / 10)
    return CosineAgreement(
        per_query=cosines,
        mean=float(cosines.mean()),
        p10=float(np.percentile(cosines, 10)),
        worst_decile=float(worst.mean()),
    )

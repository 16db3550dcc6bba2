"""Paired bootstrap confidence intervals over queries: a metric's mean, and a student's recovery of the teacher.

A test set of a few hundred queries gives a mean NDCG@10 whose sampling error is often a point or more, the
same size as the gaps between students. The bootstrap estimates that error by resampling the *queries* with
replacement and recomputing the statistic on each resample; the 2.5th and 97.5th percentiles of those values
form the 95% interval (the percentile method).

The resamples are *paired*: one matrix of query indices is drawn and reused for every system, so the
student and the teacher are scored on the same resampled queries. The recovery ratio
``100 * mean(student) / mean(teacher)`` is then computed within each resample; the per-query correlation
between the two systems cancels out, which gives a much narrower (and correct) interval than combining two
independent intervals would.

References:
    B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993 (percentile
    intervals, ch. 13).
    T. Sakai, "Evaluating evaluation metrics based on the bootstrap", SIGIR 2006 (paired bootstrap over
    topics for IR metrics).
    M. D. Smucker, J. Allan and B. Carterette, "A comparison of statistical significance tests for
    information retrieval evaluation", CIKM 2007 (bootstrap vs randomization and t tests on IR runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate on all queries and its bootstrap confidence interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float

    @property
    def bounds(self) -> list[float]:
        """``[lo, hi]``, as written to metrics.json."""
        return [self.lo, self.hi]


@dataclass(frozen=True)
class PairedBootstrap:
    """One draw of resampled query indices, shared by every system so that their statistics are paired.

    ``indices`` has shape ``(resamples, n_queries)``; row ``b`` lists the queries of resample ``b``. Build it
    with :meth:`draw`; every per-query vector passed in must list the same queries in the same order.
    """

    indices: np.ndarray
    confidence: float = DEFAULT_CONFIDENCE

    @classmethod
    def draw(
        cls,
        n_queries: int,
        resamples: int = DEFAULT_RESAMPLES,
        confidence: float = DEFAULT_CONFIDENCE,
        seed: int = 0,
    ) -> PairedBootstrap:
        """Draw ``resamples`` resamples of ``n_queries`` queries with replacement (seeded, reproducible)."""
        if n_queries < 1 or resamples < 1:
            raise ValueError(f"need at least one query and one resample, got {n_queries} and {resamples}")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        rng = np.random.default_rng(seed)
        return cls(rng.integers(0, n_queries, size=(resamples, n_queries)), confidence)

    @property
    def n_queries(self) -> int:
        return self.indices.shape[1]

    def resampled_means(self, values: np.ndarray) -> np.ndarray:
        """Mean of ``values`` (one per query) in each resample: shape ``(resamples,)``."""
        return self._check(values)[self.indices].mean(axis=1)

    def mean(self, values: np.ndarray) -> Interval:
        """Mean of a per-query metric vector with its confidence interval."""
        values = self._check(values)
        return Interval(float(values.mean()), *self._percentiles(self.resampled_means(values)))

    def recovery_samples(self, student: np.ndarray, teacher: np.ndarray) -> np.ndarray:
        """``100 * mean(student) / mean(teacher)`` in each resample, both on the same queries (nan where the
        teacher's resampled mean is 0)."""
        s, t = self.resampled_means(student), self.resampled_means(teacher)
        return np.divide(100.0 * s, t, out=np.full_like(s, np.nan), where=t != 0)

    def recovery(self, student: np.ndarray, teacher: np.ndarray) -> Interval:
        """The student's recovery of the teacher's mean, in percent, with its paired confidence interval."""
        student, teacher = self._check(student), self._check(teacher)
        t_mean = float(teacher.mean())
        point = 100.0 * float(student.mean()) / t_mean if t_mean != 0 else math.nan
        return Interval(point, *self._percentiles(self.recovery_samples(student, teacher)))

    def _percentiles(self, samples: np.ndarray) -> tuple[float, float]:
        """The percentile interval of bootstrap samples, ignoring nan (all nan gives nan bounds)."""
        finite = samples[~np.isnan(samples)]
        if finite.size == 0:
            return math.nan, math.nan
        tail = (1.0 - self.confidence) / 2
        lo, hi = np.quantile(finite, [tail, 1.0 - tail])
        return float(lo), float(hi)

    def _check(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.n_queries,):
            raise ValueError(f"expected {self.n_queries} per-query values, got shape {values.shape}")
        return values

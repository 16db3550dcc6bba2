"""Paired bootstrap: intervals contain the mean, collapse on constants, pair student and teacher, are seeded."""

from __future__ import annotations

import numpy as np
import pytest

from harnesslm.evaluation.bootstrap import PairedBootstrap


def _scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=n)


def test_interval_contains_the_mean() -> None:
    values = _scores(200)
    interval = PairedBootstrap.draw(200, resamples=500).mean(values)
    assert interval.mean == pytest.approx(values.mean())
    assert interval.lo < interval.mean < interval.hi
    assert interval.bounds == [interval.lo, interval.hi]


def test_constant_vector_gives_zero_width() -> None:
    interval = PairedBootstrap.draw(50).mean(np.full(50, 0.3))
    assert interval.lo == interval.hi == pytest.approx(0.3)


def test_student_equal_to_teacher_recovers_100() -> None:
    teacher = _scores(80)
    interval = PairedBootstrap.draw(80).recovery(teacher.copy(), teacher)
    assert interval.mean == pytest.approx(100.0)
    assert interval.lo == pytest.approx(100.0) and interval.hi == pytest.approx(100.0)


def test_resampling_is_paired() -> None:
    teacher = _scores(60)
    bootstrap = PairedBootstrap.draw(60, resamples=300)
    samples = bootstrap.recovery_samples(0.9 * teacher, teacher)
    assert samples.shape == (300,)
    np.testing.assert_allclose(samples, 90.0)  # the same queries in both means, every time
    interval = bootstrap.recovery(0.9 * teacher, teacher)
    assert interval.mean == pytest.approx(90.0)
    assert interval.lo == pytest.approx(90.0) and interval.hi == pytest.approx(90.0)
    # Unpaired (independent resamples for the student) the ratio would wander.
    other = PairedBootstrap.draw(60, resamples=300, seed=1)
    unpaired = 100 * other.resampled_means(0.9 * teacher) / bootstrap.resampled_means(teacher)
    assert unpaired.std() > 1.0


def test_recovery_with_a_zero_teacher_is_nan() -> None:
    interval = PairedBootstrap.draw(5).recovery(np.ones(5), np.zeros(5))
    assert all(np.isnan([interval.mean, interval.lo, interval.hi]))


def test_seeded_determinism() -> None:
    values = _scores(100)
    first = PairedBootstrap.draw(100, seed=7).mean(values)
    assert PairedBootstrap.draw(100, seed=7).mean(values) == first
    assert PairedBootstrap.draw(100, seed=8).mean(values) != first


def test_interval_narrows_with_more_queries() -> None:
    def width(n: int) -> float:
        interval = PairedBootstrap.draw(n).mean(_scores(n))
        return interval.hi - interval.lo

    assert width(2000) < width(200) < width(20)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one query"):
        PairedBootstrap.draw(0)
    with pytest.raises(ValueError, match="confidence"):
        PairedBootstrap.draw(10, confidence=1.5)
    with pytest.raises(ValueError, match="expected 10 per-query values"):
        PairedBootstrap.draw(10).mean(np.ones(9))

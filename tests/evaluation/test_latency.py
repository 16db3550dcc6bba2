"""Latency and throughput bookkeeping with a fake clock (no sleeps, no timing thresholds)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from harnesslm.evaluation.latency import (
    LatencyStats,
    busy_cores_elsewhere,
    measure_latency,
    measure_throughput,
    thread_info,
    torch_threads,
)
from harnesslm.pipeline.bench import _steadiness

MS = 1_000_000  # ns


class FakeClock:
    """A clock that only moves when the code under test 'works'."""

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def test_latency_percentiles_and_call_counts() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def encode(text: str) -> None:  # input "i" takes i ms
        calls.append(text)
        clock.now_ns += int(text) * MS

    inputs = [str(i) for i in range(1, 101)]
    stats = measure_latency(encode, inputs, warmup=7, clock=clock)
    assert calls[:7] == inputs[:7]  # warm-up, untimed
    assert len(calls) == 7 + 100
    assert stats == LatencyStats(
        p50_ms=pytest.approx(50.5),
        p95_ms=pytest.approx(95.05),
        p99_ms=pytest.approx(99.01),
        mean_ms=pytest.approx(50.5),
        n=100,
    )
    assert stats.p50_ms <= stats.p95_ms <= stats.p99_ms


def test_latency_repeats_and_warmup_cycles() -> None:
    calls: list[str] = []
    stats = measure_latency(calls.append, ["a", "b"], warmup=3, repeats=4)
    assert calls == ["a", "b", "a"] + ["a", "b"] * 4
    assert stats.n == 8
    assert 0 <= stats.p50_ms <= stats.p95_ms <= stats.p99_ms


def test_throughput_counts_items() -> None:
    clock = FakeClock()
    batch_sizes: list[int] = []

    def encode(batch: Sequence[str]) -> None:  # 1 ms per item
        batch_sizes.append(len(batch))
        clock.now_ns += len(batch) * MS

    inputs = [f"q{i}" for i in range(300)]
    rate = measure_throughput(encode, inputs, batch_size=128, min_seconds=1.0, clock=clock)
    # One warm-up batch, then whole passes (0.3 s each) until 1 s has elapsed: 4 passes, 1,200 items.
    assert batch_sizes == [128] + [128, 128, 44] * 4
    assert rate == pytest.approx(1000.0)


def test_rejects_empty_inputs() -> None:
    with pytest.raises(ValueError):
        measure_latency(len, [])
    with pytest.raises(ValueError):
        measure_throughput(len, [])


def test_torch_threads_sets_and_restores() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        assert thread_info()["torch_num_threads"] == 1
    assert torch.get_num_threads() == before


def test_thread_info_keys() -> None:
    pytest.importorskip("torch")
    info = thread_info()
    assert {"torch_num_threads", "cpu_count", "OMP_NUM_THREADS", "MKL_NUM_THREADS"} <= set(info)
    assert info["cpu_count"] == __import__("os").cpu_count()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")
def test_busy_cores_elsewhere_sees_another_process_spinning() -> None:
    idle = busy_cores_elsewhere(0.3)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start
        busy = busy_cores_elsewhere(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert idle is not None and busy is not None
    assert busy > 0.5, (idle, busy)  # the spinner alone keeps most of a core busy


def test_bench_flags_unsteady_timings_and_a_loaded_machine() -> None:
    results = {"teacher": {"p50_ms_per_pass": [10.0, 10.5, 10.2]}, "static": {"p50_ms_per_pass": [0.1, 0.3, 0.1]}}
    steady = _steadiness({"teacher": dict(results["teacher"])}, 0.01, 0.02)
    assert steady["warnings"] == []
    flagged = _steadiness(results, 0.9, 0.1)
    assert any("cores busy" in w for w in flagged["warnings"])
    assert any(w.startswith("static: p50 varied by 200%") for w in flagged["warnings"])
    assert results["teacher"]["p50_spread_%"] == pytest.approx(5.0)


def test_each_pass_reports_its_own_p50() -> None:
    clock = FakeClock()
    passes_done = {"calls": 0}

    def encode(text: str) -> None:  # the second pass over the inputs runs twice as slow (a busy machine)
        passes_done["calls"] += 1
        slow = 2 if 3 < passes_done["calls"] <= 6 else 1
        clock.now_ns += int(text) * slow * MS

    stats = measure_latency(encode, ["1", "2", "3"], warmup=0, repeats=3, clock=clock)
    assert stats.p50_ms_per_pass == pytest.approx((2.0, 4.0, 2.0))
    assert stats.n == 9 and stats.p50_ms == pytest.approx(2.0)  # one distribution over all 9 calls

"""Query-encoding latency and throughput, and the thread settings they were measured under.

A search box encodes one query at a time, so the headline number is the batch-1 latency distribution
(p50/p95/p99 after warm-up, the tail being what users notice); offline work cares about items per second
at a large batch size. CPU timings depend heavily on the number of threads, so reports should carry
:func:`thread_info` and pin it with :func:`torch_threads`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

Clock = Callable[[], int]
"""Monotonic clock in nanoseconds; :func:`time.perf_counter_ns` unless a test injects a fake one."""

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency percentiles in milliseconds over ``n`` timed calls (and the p50 of each pass)."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    n: int
    p50_ms_per_pass: tuple[float, ...] = field(default=(), compare=False)  # a diagnostic, not the result
    # the 1st to 99th percentiles: the whole distribution in 99 numbers, for the HTML report's plots
    percentiles_ms: tuple[float, ...] = field(default=(), compare=False)


def measure_latency(
    fn: Callable[[str], object],
    inputs: Sequence[str],
    warmup: int = 20,
    repeats: int = 1,
    *,
    clock: Clock = time.perf_counter_ns,
) -> LatencyStats:
    """Time ``fn`` on one input at a time (batch size 1).

    First ``warmup`` untimed calls (cycling through ``inputs``) let caches, allocators and lazy
    initialisation settle; then every input is timed ``repeats`` times (``repeats`` passes over ``inputs``), so
    ``n = len(inputs) * repeats``. Percentiles use numpy's linear interpolation; ``p50_ms_per_pass`` shows how
    much the passes disagree (a busy or unsteady machine).
    """
    if len(inputs) == 0:
        raise ValueError("inputs must not be empty")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup=} {repeats=}")
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    durations_ns = np.empty(len(inputs) * repeats, dtype=np.int64)
    for i in range(len(durations_ns)):
        text = inputs[i % len(inputs)]
        start = clock()
        fn(text)
        durations_ns[i] = clock() - start
    durations_ms = durations_ns / 1e6
    passes = durations_ms.reshape(repeats, len(inputs))
    return _stats(durations_ms, tuple(float(np.percentile(row, 50)) for row in passes))


def measure_throughput(
    fn: Callable[[Sequence[str]], object],
    inputs: Sequence[str],
    batch_size: int = 256,
    min_seconds: float = 1.0,
    *,
    clock: Clock = time.perf_counter_ns,
) -> float:
    """Items per second of ``fn`` called on batches of ``inputs``.

    One untimed batch warms up; then whole passes over ``inputs`` (in order, in batches of
    ``batch_size``) repeat until at least ``min_seconds`` have elapsed, so every input weighs the same.
    """
    if len(inputs) == 0:
        raise ValueError("inputs must not be empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = [inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)]
    fn(batches[0])
    min_ns = min_seconds * 1e9
    n_items = 0
    start = clock()
    while True:
        for batch in batches:
            fn(batch)
        n_items += len(inputs)
        elapsed_ns = clock() - start
        if elapsed_ns >= min_ns:
            break
    return n_items / (max(elapsed_ns, 1) / 1e9)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting afterwards."""
    import torch  # local: keeps this module importable (and cheap) where torch is not needed

    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def thread_info() -> dict[str, int | str | None]:
    """Threads torch uses, CPUs available and the thread env vars, for stating a benchmark's setting."""
    import torch

    info: dict[str, int | str | None] = {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    info.update({name: os.environ.get(name) for name in THREAD_ENV_VARS})
    return info


def busy_cores_elsewhere(window_s: float = 0.5) -> float | None:
    """Cores other processes keep busy, measured over ``window_s`` while this process sleeps (Linux only).

    The load average would count this process's own training just before; system-wide CPU time from
    ``/proc/stat`` across an idle window counts only what else runs. None where ``/proc/stat`` is missing.
    """
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window_s)
    second = _cpu_times()
    if second is None:
        return None
    busy = second[0] - first[0]
    total = second[1] - first[1]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return float(cores * busy / total) if total > 0 else 0.0


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs from the first line of ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _stats(durations_ms: np.ndarray, p50_per_pass: tuple[float, ...] = ()) -> LatencyStats:
    p50, p95, p99 = np.percentile(durations_ms, [50, 95, 99])
    return LatencyStats(
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        mean_ms=float(durations_ms.mean()),
        n=len(durations_ms),
        p50_ms_per_pass=p50_per_pass,
        percentiles_ms=tuple(round(float(v), 5) for v in np.percentile(durations_ms, np.arange(1, 100))),
    )

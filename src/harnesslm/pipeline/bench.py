"""Query-encoder latency and throughput, teacher vs students, measured in one process with fixed threads."""

from __future__ import annotations

from dataclasses import asdict

import faiss

from harnesslm.evaluation.latency import (
    busy_cores_elsewhere,
    measure_latency,
    measure_throughput,
    thread_info,
    torch_threads,
)
from harnesslm.evaluation.systems import SystemId
from harnesslm.pipeline.export import onnx_encoders
from harnesslm.run.run_dir import RunDir, console
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.searcher import Searcher
from harnesslm.students.numpy_encoder import StaticQueryEncoder

REPEATS = 3
"""Timed passes over the queries per encoder (one distribution; the spread of the passes' p50s shows how
steady the machine was)."""
BUSY_ELSEWHERE_LIMIT = 0.25  # cores used by other processes above which timings are flagged
SPREAD_LIMIT = 0.2  # (max - min) / min of the repeats' p50 above which timings are flagged ...
SPREAD_FLOOR_MS = 0.05  # ... when the difference is also larger than this (timer noise at tens of microseconds)


def bench(run: RunDir, names: list[str] | None = None) -> dict:
    """Batch-1 latency (p50/p95/p99 after warm-up), large-batch throughput, and encode+search latency.

    Each encoder's latency is measured in :data:`REPEATS` passes; the p50 of each pass is kept, and the
    report warns when the passes disagree or other processes kept cores busy (a loaded machine).
    """
    cfg = run.config.bench
    with run.timed("bench"):
        queries = list(dict.fromkeys(run.split("test")["query"]))[: cfg.latency_queries]
        if len(queries) < cfg.latency_queries:  # small test split: top up with training queries
            queries += [q for q in run.query_pool() if q not in queries][: cfg.latency_queries - len(queries)]
        encoders = {"teacher": run.teacher}
        for student in run.students(names):
            phase = latest_phase(run, student.name)
            model = load_student(run, student.name, phase)
            # a static student is timed on its numpy path (the same embeddings; see students.numpy_encoder)
            encoders[SystemId(student.name, phase).label] = StaticQueryEncoder.from_model(model) or model
            encoders.update(onnx_encoders(run, student.name, phase, threads=cfg.threads))  # when exported
        faiss.omp_set_num_threads(cfg.threads)
        results = {}
        busy_before = busy_cores_elsewhere()
        with torch_threads(cfg.threads):
            threads = thread_info()
            for name, model in encoders.items():
                searcher = Searcher(model, run.index)
                encode_one = lambda q, s=searcher: s.encode([q], batch_size=1)  # noqa: E731
                latency = measure_latency(encode_one, queries, cfg.warmup, repeats=REPEATS)
                e2e = measure_latency(lambda q, s=searcher: s.search([q], 10), queries, cfg.warmup)
                throughput = measure_throughput(
                    lambda batch, s=searcher: s.encode(batch, cfg.throughput_batch_size),
                    queries,
                    cfg.throughput_batch_size,
                )
                results[name] = {
                    "latency": asdict(latency),
                    "p50_ms_per_pass": list(latency.p50_ms_per_pass),
                    "search_latency": asdict(e2e),
                    "queries_per_s": throughput,
                }
                console.print(f"{name}: p50 {latency.p50_ms:.2f} ms, {throughput:,.0f} queries/s")
        teacher = results["teacher"]
        for values in results.values():
            values["latency_speedup_p50"] = teacher["latency"]["p50_ms"] / values["latency"]["p50_ms"]
            values["throughput_ratio"] = values["queries_per_s"] / teacher["queries_per_s"]
        busy_after = busy_cores_elsewhere()
        report = {
            "threads": threads,
            "queries": len(queries),
            "encoders": results,
            "machine": _steadiness(results, busy_before, busy_after),
        }
        for warning in report["machine"]["warnings"]:
            console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        run.update_json("bench.json", report)
    return report


def _steadiness(results: dict, busy_before: float | None, busy_after: float | None) -> dict:
    """How loaded the machine was and how much the repeated p50s disagree, with warnings in words."""
    warnings = []
    busy = [b for b in (busy_before, busy_after) if b is not None]
    if busy and max(busy) > BUSY_ELSEWHERE_LIMIT:
        warnings.append(
            f"other processes kept {max(busy):.2f} cores busy around the timing: latencies are inflated; "
            "rerun `harness bench` on an idle machine"
        )
    for name, values in results.items():
        p50s = values["p50_ms_per_pass"]
        spread = (max(p50s) - min(p50s)) / max(min(p50s), 1e-9)
        values["p50_spread_%"] = 100 * spread
        if spread > SPREAD_LIMIT and max(p50s) - min(p50s) > SPREAD_FLOOR_MS:
            warnings.append(
                f"{name}: p50 varied by {100 * spread:.0f}% across {len(p50s)} passes "
                f"({min(p50s):.2f}-{max(p50s):.2f} ms); the machine was not steady"
            )
    return {"busy_cores_elsewhere_before": busy_before, "busy_cores_elsewhere_after": busy_after, "warnings": warnings}

"""Query-encoder latency and throughput, teacher vs students, measured in one process with fixed threads."""

from __future__ import annotations

from dataclasses import asdict

import faiss

from harnesslm.evaluation.latency import measure_latency, measure_throughput, thread_info, torch_threads
from harnesslm.pipeline.export import onnx_encoders
from harnesslm.pipeline.run_dir import RunDir, console
from harnesslm.pipeline.steps import latest_phase, load_student
from harnesslm.serving.searcher import Searcher


def bench(run: RunDir, names: list[str] | None = None) -> dict:
    """Batch-1 latency (p50/p95/p99 after warm-up), large-batch throughput, and encode+search latency."""
    cfg = run.config.bench
    with run.timed("bench"):
        queries = list(dict.fromkeys(run.split("test")["query"]))[: cfg.latency_queries]
        if len(queries) < cfg.latency_queries:  # small test split: top up with training queries
            queries += [q for q in run.query_pool() if q not in queries][: cfg.latency_queries - len(queries)]
        encoders = {"teacher": run.teacher}
        for student in run.students(names):
            phase = latest_phase(run, student.name)
            encoders[f"{student.name} ({phase})"] = load_student(run, student.name, phase)
            encoders.update(onnx_encoders(run, student.name, phase, threads=cfg.threads))  # when exported
        faiss.omp_set_num_threads(cfg.threads)
        results = {}
        with torch_threads(cfg.threads):
            threads = thread_info()
            for name, model in encoders.items():
                searcher = Searcher(model, run.index)
                latency = measure_latency(lambda q, s=searcher: s.encode([q], batch_size=1), queries, cfg.warmup)
                e2e = measure_latency(lambda q, s=searcher: s.search([q], 10), queries, cfg.warmup)
                throughput = measure_throughput(
                    lambda batch, s=searcher: s.encode(batch, cfg.throughput_batch_size),
                    queries,
                    cfg.throughput_batch_size,
                )
                results[name] = {
                    "latency": asdict(latency),
                    "search_latency": asdict(e2e),
                    "queries_per_s": throughput,
                }
                console.print(f"{name}: p50 {latency.p50_ms:.2f} ms, {throughput:,.0f} queries/s")
        teacher = results["teacher"]
        for values in results.values():
            values["latency_speedup_p50"] = teacher["latency"]["p50_ms"] / values["latency"]["p50_ms"]
            values["throughput_ratio"] = values["queries_per_s"] / teacher["queries_per_s"]
        report = {"threads": threads, "queries": len(queries), "encoders": results}
        run.update_json("bench.json", report)
    return report

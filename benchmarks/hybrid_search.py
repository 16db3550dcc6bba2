"""Benchmark: hybrid lexical + dense retrieval on a run's held-out test queries, as the service searches.

Rows: BM25 alone, the teacher, the student, and each dense retriever fused with BM25 (weighted reciprocal-rank
fusion, the dense weight chosen on the validation split by ``harness evaluate`` or, failing that, here on the
same validation queries; never on the test queries). Each system searches through the same objects the service
uses (``HybridSearcher`` over the serving index: an HNSW graph with exact fallback for a large catalog), so the
quality and the latency are of one and the same search. Reported per system: NDCG@10 with its paired-bootstrap
95% interval, Recall@100, and batch-1 latency p50/p99 (encode + search [+ BM25 + fusion]) in one process with
the service's thread setting. Prints a table and writes JSON.

    python benchmarks/hybrid_search.py runs/hd-serve [--student static] [--latency-queries 300] \\
        [--out benchmarks/results/hybrid_search.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harnesslm.evaluation.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, PairedBootstrap
from harnesslm.evaluation.latency import measure_latency, thread_info
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.fusion import FUSION_DEPTH
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.pipeline.serve import hybrid_weight, pin_threads, serving_index, serving_threads
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.searcher import HybridSearcher, Searcher
from harnesslm.students.numpy_encoder import StaticQueryEncoder
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="an evaluated run directory (index, teacher, a student)")
    parser.add_argument("--student", default=None, help="student to fuse (default: the run's first)")
    parser.add_argument("--index", default="auto", choices=("auto", "exact", "hnsw"), help="serving index")
    parser.add_argument("--latency-queries", type=int, default=300, help="test queries timed at batch 1")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hybrid_search.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    provenance = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    run = RunDir(args.run_dir)
    threads = serving_threads()
    pin_threads(threads)
    name = args.student or run.config.students[0].name
    phase = latest_phase(run, name)
    student = load_student(run, name, phase)
    encoder = StaticQueryEncoder.from_model(student) or student  # the service's numpy path for a static student
    dense = {
        "teacher (fine-tuned)": run.teacher,
        f"{name} ({phase})": encoder,
    }
    judged = run.split("test")
    qrels = qrels_of(judged)
    queries = list(qrels)
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    bootstrap = PairedBootstrap.draw(len(queries), DEFAULT_RESAMPLES, DEFAULT_CONFIDENCE, 0)
    timed = queries[: args.latency_queries]
    rows: dict[str, dict] = {}

    def record(label: str, search, role: str, weight: float | None = None, index: str | None = None) -> None:
        ranked = search(queries, FUSION_DEPTH)
        report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
        ndcg = np.array([report.per_query[q]["ndcg@10"] for q in queries])
        latency = measure_latency(lambda q: search([q], 10), timed, warmup=20)
        rows[label] = {
            "role": role,
            "ndcg@10": report.means["ndcg@10"],
            "ndcg@10_ci": list(bootstrap.mean(ndcg).bounds),
            "recall@100": report.means["recall@100"],
            "p50_ms": latency.p50_ms,
            "p99_ms": latency.p99_ms,
            **({"dense_weight": weight} if weight is not None else {}),
            **({"index": index} if index else {}),
        }
        console.print(f"{label}: NDCG@10 {report.means['ndcg@10']:.4f}, p50 {latency.p50_ms:.2f} ms")

    lexical = run.lexical_index
    first = True
    for label, model in dense.items():
        index = serving_index(run, args.index, model, label)
        searcher = Searcher(model, index)
        hybrid = HybridSearcher(searcher, lexical, hybrid_weight(run, label, Searcher(model, run.index)))
        kind = f"{index.meta.kind}{' + exact fallback' if hasattr(index, 'exact') else ''}"
        if first:
            record("BM25", lambda qs, k, h=hybrid: h.search(qs, k, mode="lexical")[0], "lexical")
            first = False
        record(label, lambda qs, k, h=hybrid: h.search(qs, k, mode="dense")[0], "dense", index=kind)
        sid_name, _, sid_phase = label.partition(" (")
        record(
            f"{sid_name} + BM25 ({sid_phase}",
            lambda qs, k, h=hybrid: h.search(qs, k, mode="hybrid")[0],
            "hybrid",
            weight=hybrid.weight,
            index=kind,
        )
    results = {
        "run_dir": str(args.run_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "queries": len(queries),
        "latency_queries": len(timed),
        "fusion": f"weighted reciprocal-rank fusion, k=60, each list {FUSION_DEPTH} deep; weight from validation",
        "threads": {"serving": threads, **thread_info()},
        "systems": rows,
    }
    provenance.save(args.out, results)
    table = Table(title=f"hybrid search on {len(queries):,} held-out test queries")
    for column in ("system", "dense weight", "NDCG@10 [95% CI]", "Recall@100", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for label, row in rows.items():
        low, high = row["ndcg@10_ci"]
        table.add_row(
            label,
            f"{row['dense_weight']:g}" if "dense_weight" in row else "-",
            f"{row['ndcg@10']:.4f} [{low:.4f}, {high:.4f}]",
            f"{row['recall@100']:.4f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
        )
    console.print(table)
    console.print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the serving HNSW graph's settings (M, efConstruction, efSearch), chosen on validation queries.

Under load the static student's service spends most of each request in the HNSW search (Server-Timing), so a
graph that reaches the same recall with a smaller ``efSearch`` serves more requests per core. For each
``M:efConstruction`` graph over the run's teacher item embeddings and each ``efSearch``, this measures, with the
served student's query embeddings (FAISS on one thread, batch 1, as the service runs it):

- build seconds;
- recall@10 against exact search and NDCG@10, on the validation queries (where the setting is chosen);
- search p50 / p99 ms per query (validation queries);

then picks the fastest setting (p50) whose validation recall@10 is at least ``--min-recall`` (default: the
``--baseline`` setting's own recall, M=32, efConstruction 80, efSearch 128: the default before this benchmark),
and reports it and the baseline on the test queries (the final figure only). Prints a table and writes JSON.

    python benchmarks/serving_hnsw.py runs/hd-serve [--student static] [--graphs 32:80,16:200,32:200] \\
        [--ef 16,32,48,64,96,128] [--out benchmarks/results/serving_hnsw.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from harnesslm.config import IndexConfig
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.item_index import ItemIndex, index_recall
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.searcher import Searcher
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
console = Console()
DEFAULT = IndexConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="run directory with an exact index and a trained student")
    parser.add_argument("--student", default=None, help="served student (default: the run's first)")
    parser.add_argument("--graphs", default="32:80,16:200,32:200", help="M:efConstruction graphs to build")
    parser.add_argument("--baseline", default="32:80:128", help="M:efConstruction:efSearch the choice must match")
    parser.add_argument("--ef", default="16,32,48,64,96,128", help="efSearch values per graph")
    parser.add_argument("--min-recall", type=float, default=None, help="default: the baseline's recall")
    parser.add_argument("--k", type=int, default=10, help="hits per search (the service's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving_hnsw.json")
    args = parser.parse_args(argv)
    args.graphs = [tuple(int(x) for x in g.split(":")) for g in args.graphs.split(",")]
    args.ef = [int(x) for x in args.ef.split(",")]
    args.baseline = tuple(int(x) for x in args.baseline.split(":"))
    return args


def timed_search(index: ItemIndex, queries: np.ndarray, k: int) -> np.ndarray:
    """Milliseconds per batch-1 search, one query at a time (after a short warm-up)."""
    for row in queries[:20]:
        index.search(row[None, :], k)
    out = np.empty(len(queries))
    for i, row in enumerate(queries):
        start = time.perf_counter()
        index.search(row[None, :], k)
        out[i] = 1000 * (time.perf_counter() - start)
    return out


def quality(index: ItemIndex, exact: ItemIndex, queries: list[str], emb: np.ndarray, qrels, scale, k: int) -> dict:
    ranked = index.search(emb, k)[0]
    report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
    return {f"recall@{k}_vs_exact": index_recall(index, exact, emb, k), "ndcg@10": report.means["ndcg@10"]}


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    faiss.omp_set_num_threads(1)
    run = RunDir(args.run_dir)
    exact = run.index
    if exact.meta.kind != "exact":
        print(f"{args.run_dir} was built with a {exact.meta.kind} index; this compares graphs against exact search")
        return 2
    name = args.student or run.students()[0].name
    student = load_student(run, name, latest_phase(run, name))
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    splits = {}
    for split in ("validation", "test"):
        qrels = qrels_of(run.split(split))
        queries = list(qrels)
        splits[split] = (queries, Searcher(student, exact).encode(queries), qrels)
    vectors = exact.vectors()
    rows: list[dict] = []
    graphs: dict[tuple[int, int], ItemIndex] = {}
    for m, efc in args.graphs:
        graph = ItemIndex.build(vectors, list(exact.item_ids), exact.meta.space, "hnsw", m, efc, max(args.ef))
        graphs[(m, efc)] = graph
        for ef in args.ef:
            if ef < args.k:
                continue
            graph.tune(ef_search=ef)
            queries, emb, qrels = splits["validation"]
            ms = timed_search(graph, emb, args.k)
            row = {
                "m": m,
                "ef_construction": efc,
                "ef_search": ef,
                "build_seconds": graph.meta.build_seconds,
                "validation": quality(graph, exact, queries, emb, qrels, scale, args.k),
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
            }
            rows.append(row)
            console.print(
                f"M={m} efC={efc} ef={ef}: recall@{args.k} {row['validation'][f'recall@{args.k}_vs_exact']:.4f}, "
                f"p50 {row['p50_ms']:.3f} ms"
            )
    recall_key = f"recall@{args.k}_vs_exact"
    default = next((r for r in rows if (r["m"], r["ef_construction"], r["ef_search"]) == args.baseline), None)
    floor = args.min_recall if args.min_recall is not None else (default["validation"][recall_key] if default else 0.0)
    eligible = [r for r in rows if r["validation"][recall_key] >= floor]
    chosen = min(eligible, key=lambda r: r["p50_ms"]) if eligible else None
    exact_ms = timed_search(exact, splits["validation"][1], args.k)
    finals = {}
    for label, row in (("baseline", default), ("chosen", chosen)):
        if row is None:
            continue
        graph = graphs[(row["m"], row["ef_construction"])]
        graph.tune(ef_search=row["ef_search"])
        queries, emb, qrels = splits["test"]
        finals[label] = {
            "setting": {k: row[k] for k in ("m", "ef_construction", "ef_search")},
            "test": quality(graph, exact, queries, emb, qrels, scale, args.k),
        }
    exact_test, exact_validation = (
        quality(exact, exact, *splits[split], scale, args.k)["ndcg@10"] for split in ("test", "validation")
    )
    results = {
        "run_dir": str(args.run_dir),
        "student": name,
        "items": exact.meta.size,
        "dim": exact.meta.dim,
        "k": args.k,
        "faiss_threads": 1,
        "exact": {
            "p50_ms": float(np.percentile(exact_ms, 50)),
            "p99_ms": float(np.percentile(exact_ms, 99)),
            "validation_ndcg@10": exact_validation,
            "test_ndcg@10": exact_test,
        },
        "min_recall": floor,
        "settings": rows,
        "chosen_on_validation": finals.get("chosen"),
        "baseline": finals.get("baseline"),
        "library_default": {k: getattr(DEFAULT, k) for k in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search")},
    }
    record.save(args.out, results)
    table = Table(title=f"serving HNSW, {name} queries, {exact.meta.size:,} items ({exact.meta.dim}-d), 1 thread")
    for column in ("M", "efC", "ef", "build s", f"val R@{args.k}", "val NDCG@10", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in rows:
        mark = " *" if r is chosen else (" (baseline)" if r is default else "")
        table.add_row(
            str(r["m"]),
            str(r["ef_construction"]),
            f"{r['ef_search']}{mark}",
            f"{r['build_seconds']:.1f}",
            f"{r['validation'][recall_key]:.4f}",
            f"{r['validation']['ndcg@10']:.4f}",
            f"{r['p50_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
        )
    table.add_row(
        "exact",
        "",
        "",
        "",
        "1.0000",
        f"{exact_validation:.4f}",
        *(f"{results['exact'][k]:.3f}" for k in ("p50_ms", "p99_ms")),
    )
    console.print(table)
    console.print(f"chosen on validation (recall@{args.k} >= {floor:.4f}): {finals.get('chosen')}")
    console.print(f"baseline on test: {finals.get('baseline')}; exact test NDCG@10 {exact_test:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

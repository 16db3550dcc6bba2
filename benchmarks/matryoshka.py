"""Benchmark: the item index at Matryoshka dimensions, quality kept against search time saved.

A teacher trained with Matryoshka representation learning (EmbeddingGemma: 768, 512, 256, 128) keeps most of
its meaning in the leading dimensions, so the index can keep only those (``index.dim``). For each dimension
this builds an exact and an HNSW index from the run's cached teacher item embeddings, cut and re-normalised
(``harnesslm.index.item_index.matryoshka``), and measures on the test queries (teacher query embeddings, cut
the same way): NDCG@10, Recall@100, and batch-1 search latency p50 for both index kinds. A teacher not trained
with MRL (MiniLM, mpnet) is shown for comparison: its leading dimensions are not special. Prints a table and
writes JSON.

    python benchmarks/matryoshka.py runs/hd-serve [--dims 384,256,128,64] [--out benchmarks/results/matryoshka.json]
    python benchmarks/matryoshka.py runs/hd-gemma --off-the-shelf --dims 768,512,256,128 \
        --out benchmarks/results/matryoshka_gemma_full.json

``--dims`` defaults to the full dimension and its halves (/2, /4, /8); give a MRL teacher its trained dimensions.

``--model NAME`` measures another embedder off the shelf instead of the run's teacher (for example
``bundled:embeddinggemma-300m``, trained with MRL), with its own query and document prompts, over a sub-catalog
of every test-judged item plus ``--distractors`` random others (one pass over the whole catalog with a 300M
model takes most of an hour on 2 cores). ``--off-the-shelf`` measures the run's teacher before fine-tuning over
the whole catalog, from the cached pass that mined its hard negatives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import faiss
from rich.console import Console
from rich.table import Table

from harnesslm.encoding.cache import encode
from harnesslm.evaluation.latency import measure_latency
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.item_index import ItemIndex
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.run.catalog_embeddings import item_embeddings
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--dims", default=None, help="comma-separated dimensions (default: full, /2, /4, /8)")
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads for the latency (1: batch 1)")
    parser.add_argument("--model", default=None, help="an embedder off the shelf instead of the run's teacher")
    parser.add_argument(
        "--off-the-shelf",
        action="store_true",
        help="the run's teacher before fine-tuning, over the whole catalog (its cached pass: the one that mined "
        "the teacher's hard negatives; made and cached when missing)",
    )
    parser.add_argument("--distractors", type=int, default=10_000, help="with --model: random non-judged items")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "matryoshka.json")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    test = run.split("test")
    catalog = run.catalog
    if args.model:
        import numpy as np

        from harnesslm.models.bundled import resolve_model
        from harnesslm.models.model_loading import load_model

        model = load_model(resolve_model(args.model), run.config.teacher.max_seq_length)
        others = catalog[~catalog["item_id"].isin(set(test["item_id"]))]
        rng = np.random.default_rng(0)
        picked = others.iloc[rng.choice(len(others), size=min(args.distractors, len(others)), replace=False)]
        catalog = catalog[catalog["item_id"].isin(set(test["item_id"]) | set(picked["item_id"]))]
        items = encode(model, catalog["text"].tolist(), batch_size=32, progress=True, role="document")
    elif args.off_the_shelf:
        model = run.base_teacher
        items = item_embeddings(run, model, progress=True)
    else:
        model = run.teacher
        items = item_embeddings(run, model, progress=True)
    space = "base" if args.model or args.off_the_shelf else run.teacher_space
    full = items.shape[1]
    dims = [int(d) for d in args.dims.split(",")] if args.dims else [full, full // 2, full // 4, full // 8]
    qrels = qrels_of(test)
    queries = list(qrels)
    query_emb = encode(model, queries, batch_size=64, role="query")
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    ids = catalog["item_id"].tolist()
    rows_of = {q: i for i, q in enumerate(queries)}
    rows = []
    for dim in dims:
        row: dict = {"dim": dim}
        for kind in ("exact", "hnsw"):
            index = ItemIndex.build(items, ids, space, kind=kind, dim=dim)  # type: ignore[arg-type]
            ranked = index.search(query_emb, 100)[0]
            report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
            latency = measure_latency(lambda q, ix=index: ix.search(query_emb[rows_of[q]][None], 10), queries[:300])
            row[kind] = {
                "ndcg@10": report.means["ndcg@10"],
                "recall@100": report.means["recall@100"],
                "search_p50_ms": latency.p50_ms,
                "memory_mb": index.memory_bytes / 2**20,
            }
        rows.append(row)
        console.print(
            f"{dim}-d: NDCG@10 {row['exact']['ndcg@10']:.4f}, exact p50 {row['exact']['search_p50_ms']:.3f} ms"
        )
    results = {
        "run_dir": str(args.run_dir),
        "teacher": args.model or run.config.teacher.model,
        "off_the_shelf": bool(args.model or args.off_the_shelf),
        "items": len(ids),
        "test_queries": len(queries),
        "faiss_threads": args.threads,
        "rows": rows,
    }
    record.save(args.out, results)
    table = Table(title=f"Matryoshka index dimensions, {args.model or run.config.teacher.model} ({len(ids):,} items)")
    for column in ("dim", "NDCG@10", "Recall@100", "exact p50 ms", "HNSW NDCG@10", "HNSW p50 ms", "exact MB"):
        table.add_column(column, justify="right")
    for row in rows:
        exact, hnsw = row["exact"], row["hnsw"]
        table.add_row(
            str(row["dim"]),
            f"{exact['ndcg@10']:.4f}",
            f"{exact['recall@100']:.4f}",
            f"{exact['search_p50_ms']:.3f}",
            f"{hnsw['ndcg@10']:.4f}",
            f"{hnsw['search_p50_ms']:.3f}",
            f"{exact['memory_mb']:.1f}",
        )
    console.print(table)
    console.print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: synthetic search queries written by SmolLM2-135M for Home Depot titles, per backend.

The few-shot examples are the judged (query, title) pairs of ``dev.csv`` with relevance >= 2.33; the titles are
drawn from ``products.csv`` (seeded, excluding the prompt's own items). For each backend (llama-cpp-python on
the Q4_1 GGUF file, transformers' GGUF loading) and each number of queries per item it reports the load time,
queries kept, queries/s and generated tokens/s (end to end: the per-item prompt suffix is included), and the
share of items with at least one kept query; 10 (title -> queries) examples per row go to the JSON file.

    make install-llm
    python benchmarks/synthetic_queries.py [--items 50] [--backend both] [--per-item 1,3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from harnesslm.pool.synthetic_queries import QueryWriter, select_examples
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["llama_cpp", "transformers"]
MIN_RELEVANCE = 2.33


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "homedepot")
    parser.add_argument("--items", type=int, default=50, help="catalog titles to write queries for")
    parser.add_argument("--backend", choices=["both", *BACKENDS], default="both")
    parser.add_argument("--per-item", default="1,3", help="queries per item, comma-separated (one row each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (use 1 when other jobs share the CPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "synthetic_queries.json")
    return parser.parse_args(argv)


def load_data(folder: Path, n_items: int, seed: int) -> tuple[list[tuple[str, str]], list[float], list[str]]:
    """Judged (query, title) pairs with their relevance, and ``n_items`` titles not shown in the prompt."""
    judged = pd.read_csv(folder / "dev.csv")
    judged = judged[judged["relevance"] >= MIN_RELEVANCE]
    examples = list(zip(judged["search_term"].astype(str), judged["product_title"].astype(str), strict=True))
    relevance = judged["relevance"].astype(float).tolist()
    shown = {text for text, _ in select_examples(examples, relevance=relevance)}
    products = pd.read_csv(folder / "products.csv")
    products = products[~products["product_title"].isin(shown)]
    titles = products.sample(n_items, random_state=seed)["product_title"].astype(str).tolist()
    return examples, relevance, titles


def run_backend(backend: str, args: argparse.Namespace, data: tuple, per_items: list[int]) -> list[dict]:
    """Load one backend once, then write queries for every title at each ``per_item``."""
    examples, relevance, titles = data
    writer = QueryWriter(examples, relevance=relevance, backend=backend, seed=args.seed, n_threads=args.threads)
    rows = []
    for per_item in per_items:
        tokens0, seconds0 = writer.stats.tokens, writer.stats.generate_seconds
        start = time.perf_counter()
        queries = writer.write_many(titles, per_item)
        seconds = time.perf_counter() - start
        tokens = writer.stats.tokens - tokens0
        kept = sum(len(q) for q in queries)
        rows.append(
            {
                "backend": backend,
                "per_item": per_item,
                "load_s": round(writer.stats.load_seconds, 2),
                "items": len(titles),
                "queries_kept": kept,
                "seconds": round(seconds, 2),
                "seconds_per_item": round(seconds / len(titles), 3),
                "queries_per_s": round(kept / seconds, 3),
                "tokens": tokens,
                "tokens_per_s": round(tokens / (writer.stats.generate_seconds - seconds0), 1),
                "items_with_query": sum(1 for q in queries if q) / len(titles),
                "examples": [{"title": t, "queries": q} for t, q in zip(titles[:10], queries[:10], strict=True)],
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    table = Table(title="Synthetic queries (SmolLM2-135M, Home Depot titles)")
    for column in ["backend", "per item", "load s", "items", "queries kept", "s/item", "queries/s", "tokens/s"]:
        table.add_column(column, justify="left" if column == "backend" else "right")
    table.add_column("items with >=1 query", justify="right")
    for r in rows:
        table.add_row(
            r["backend"],
            str(r["per_item"]),
            f"{r['load_s']:.1f}",
            str(r["items"]),
            str(r["queries_kept"]),
            f"{r['seconds_per_item']:.2f}",
            f"{r['queries_per_s']:.2f}",
            f"{r['tokens_per_s']:.1f}",
            f"{r['items_with_query']:.0%}",
        )
    Console(width=max(Console().width, 130)).print(table)


def main(argv: list[str] | None = None) -> None:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    per_items = [int(n) for n in args.per_item.split(",")]
    data = load_data(args.data.resolve(), args.items, args.seed)
    backends = BACKENDS if args.backend == "both" else [args.backend]
    rows = [row for backend in backends for row in run_backend(backend, args, data, per_items)]
    print_table(rows)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in {"data", "out"}}
    shots = select_examples(data[0], relevance=data[1])
    settings["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]  # other jobs share the CPU
    payload = {"settings": settings, "prompt_examples": [{"title": t, "queries": q} for t, q in shots], "rows": rows}
    record.save(args.out, payload)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

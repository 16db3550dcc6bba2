"""Benchmark: every item index kind over a run's teacher item embeddings (exact, HNSW, IVF-PQ, SQ8, Milvus).

For each kind: build time, memory (serialized FAISS index), batch-1 query latency p50/p99 and recall@k against
exact search, with the run's held-out test queries encoded by the run's fine-tuned teacher. The catalog
embeddings come from the run's embedding cache; if they are not there the script says so and stops, unless
``--allow-encode`` (encoding 54k items with mpnet takes ~30-40 min on 2 cores).

    python benchmarks/index_kinds.py [runs/homedepot] [--max-items 5000] [--nprobe 16 64] [--kinds exact sq8]

Prints a table and writes ``benchmarks/results/index_kinds.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import faiss
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harnesslm.encoding.cache import encode, read_cache
from harnesslm.index.item_index import ItemIndex, default_nlist, default_pq_m
from harnesslm.index.profile import profile_index
from harnesslm.run.catalog_embeddings import item_cache_path, item_embeddings
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("exact", "hnsw", "ivfpq", "sq8", "milvus")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", type=Path, default=ROOT / "runs" / "homedepot", help="run directory")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "index_kinds.json")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="kinds to build")
    parser.add_argument("--k", type=int, default=100, help="recall@k and search depth (default 100)")
    parser.add_argument("--max-items", type=int, default=None, help="only the first N catalog items (quick check)")
    parser.add_argument("--max-queries", type=int, default=None, help="only the first N test queries")
    parser.add_argument("--latency-queries", type=int, default=None, help="time batch-1 latency on N queries")
    parser.add_argument("--threads", type=int, default=2, help="FAISS and torch threads (default 2)")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--nlist", type=int, default=None, help="ivfpq lists (default ~4 sqrt(items))")
    parser.add_argument("--pq-m", type=int, default=None, help="ivfpq bytes per item (default dim / 4)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[32], help="one ivfpq row per value")
    parser.add_argument("--milvus-uri", default=None, help="Milvus uri (default: a temporary Milvus Lite file)")
    parser.add_argument(
        "--milvus-server",
        action="store_true",
        help="start a Milvus standalone server on 127.0.0.1 for the run (the `milvus` package's binary) and use it",
    )
    parser.add_argument("--milvus-index-type", default="HNSW", help="FLAT, HNSW, IVF_FLAT, ... (default HNSW)")
    parser.add_argument("--allow-encode", action="store_true", help="encode the catalog if it is not cached")
    return parser.parse_args(argv)


def catalog_embeddings(run: RunDir, allow_encode: bool, console: Console) -> np.ndarray | None:
    """The teacher's catalog embeddings from the run's cache; None (after saying why) on a miss."""
    texts = run.catalog["text"].tolist()
    path = item_cache_path(run, run.teacher)  # the document-role file (a prompted teacher has two)
    cached = read_cache(path, len(texts))
    if cached is not None:
        console.print(f"catalog embeddings: {path} ({cached.shape[0]:,} x {cached.shape[1]})")
        return cached
    if not allow_encode:
        console.print(
            f"[red]no cached teacher embeddings at {path}[/red]: run `harness index {run.root}` first, or pass "
            "--allow-encode to encode the catalog now (it can take half an hour on a CPU)"
        )
        return None
    console.print(f"encoding {len(texts):,} catalog items with the teacher (cache miss)")
    return item_embeddings(run, run.teacher, progress=True)


def milvus_available(uri: str | None) -> str | None:
    """Why Milvus cannot be benchmarked here, or None when it can."""
    if importlib.util.find_spec("pymilvus") is None:
        return "pymilvus is not installed (pip install 'harness-lm[milvus]')"
    if uri is None and importlib.util.find_spec("milvus_lite") is None:
        return "milvus-lite is not installed and no --milvus-uri was given"
    return None


def describe(index: ItemIndex) -> str:
    meta = index.meta
    if meta.kind == "hnsw":
        return f"M={meta.hnsw_m} efSearch={meta.hnsw_ef_search}"
    if meta.kind == "ivfpq":
        return f"nlist={meta.ivf_nlist} m={meta.pq_m}x{meta.pq_nbits}b nprobe={meta.ivf_nprobe}"
    if meta.kind == "sq8":
        return "8-bit scalar quantizer, flat scan"
    return "IndexFlatIP"


def benchmark(args: argparse.Namespace, console: Console) -> dict | None:
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    embeddings = catalog_embeddings(run, args.allow_encode, console)
    if embeddings is None:
        return None
    ids = run.catalog["item_id"].tolist()
    if args.max_items:
        embeddings, ids = embeddings[: args.max_items], ids[: args.max_items]
    queries = list(dict.fromkeys(run.split("test")["query"]))[: args.max_queries]
    console.print(f"encoding {len(queries):,} test queries with the teacher")
    query_emb = encode(run.teacher, queries, batch_size=128)
    space = run.teacher_space
    k = min(args.k, len(ids))

    exact = ItemIndex.build(embeddings, ids, space)
    rows: list[dict] = []

    def record(index, settings: str) -> None:
        profile = profile_index(index, exact, query_emb, k=k, latency_queries=args.latency_queries)
        rows.append({**profile.as_dict(), "settings": settings})
        console.print(
            f"  {profile.kind:6} {settings}: recall@{k} {profile.recall:.4f}, p50 {profile.latency_p50_ms:.3f} ms"
        )

    for kind in args.kinds:
        console.print(f"[bold]{kind}")
        if kind == "exact":
            record(exact, describe(exact))
        elif kind == "hnsw":
            hnsw = ItemIndex.build(
                embeddings, ids, space, kind="hnsw", hnsw_m=args.hnsw_m, hnsw_ef_search=args.ef_search
            )
            record(hnsw, describe(hnsw))
        elif kind == "ivfpq":
            ivf = ItemIndex.build(embeddings, ids, space, kind="ivfpq", ivf_nlist=args.nlist, pq_m=args.pq_m)
            for nprobe in args.nprobe:  # nprobe is a search-time knob: one build, one row per value
                ivf.tune(nprobe=nprobe)
                record(ivf, describe(ivf))
        elif kind == "sq8":
            sq8 = ItemIndex.build(embeddings, ids, space, kind="sq8")
            record(sq8, describe(sq8))
        elif kind == "milvus":
            reason = milvus_available(args.milvus_uri)
            if reason:
                console.print(f"  [yellow]skipped[/yellow]: {reason}")
                continue
            record_milvus(args, embeddings, ids, space, record)
    return {
        "run": str(args.run_dir),
        "items": len(ids),
        "dim": int(embeddings.shape[1]),
        "queries": len(queries),
        "k": k,
        "threads": args.threads,
        "teacher_space": space,
        "defaults": {"nlist": default_nlist(len(ids)), "pq_m": default_pq_m(int(embeddings.shape[1]))},
        "results": rows,
    }


def record_milvus(args: argparse.Namespace, embeddings: np.ndarray, ids: list[str], space: str, record) -> None:
    """Build a Milvus collection (a throw-away Milvus Lite file unless --milvus-uri or --milvus-server) and
    profile it."""
    if args.milvus_server and args.milvus_uri is None:
        from milvus import MilvusServer

        from load_test import free_port

        server = MilvusServer()
        server.set_base_dir(tempfile.mkdtemp(prefix="harness-milvus-server-"))
        server.listen_port = free_port()
        server.start()
        try:
            args.milvus_uri = f"http://127.0.0.1:{server.listen_port}"
            record_milvus(args, embeddings, ids, space, record)
        finally:
            args.milvus_uri = None
            server.stop()
            shutil.rmtree(server.config.base_data_dir, ignore_errors=True)
        return
    from harnesslm.index.milvus_index import MilvusItemIndex, connect, milvus_params

    scratch = Path(tempfile.mkdtemp(prefix="harness-milvus-")) if args.milvus_uri is None else None
    uri = args.milvus_uri or str(scratch / "bench.db")
    index_params, search_params = milvus_params(
        args.milvus_index_type, args.hnsw_m, 80, args.ef_search, args.nlist or default_nlist(len(ids)), args.nprobe[0]
    )
    try:
        milvus = MilvusItemIndex.build(
            embeddings,
            ids,
            space,
            uri=uri,
            collection="harness_bench",
            index_type=args.milvus_index_type,
            index_params=index_params,
            search_params=search_params,
        )
        params = " ".join(f"{key}={value}" for key, value in {**index_params, **search_params}.items())
        where = "Milvus Lite" if scratch else f"server {connect(uri).get_server_version()} at {uri}"
        record(milvus, f"{milvus.meta.index_type} {params} ({where})")
        if scratch is None:  # leave a real server as it was
            milvus.client.drop_alias("harness_bench")
            milvus.client.drop_collection(milvus.meta.physical_collection)
        milvus.close()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def print_table(summary: dict, console: Console) -> None:
    k = summary["k"]
    table = Table(
        title=f"Index kinds: {summary['items']:,} items x {summary['dim']}, {summary['queries']} queries, "
        f"{summary['threads']} threads"
    )
    for column in ("kind", "settings", "build s", "memory MB", "p50 ms", "p99 ms", f"recall@{k} vs exact"):
        table.add_column(column, justify="left" if column in ("kind", "settings") else "right")
    for row in summary["results"]:
        memory = "-" if row["memory_bytes"] is None else f"{row['memory_bytes'] / 2**20:.1f}"
        table.add_row(
            row["kind"],
            row["settings"],
            f"{row['build_seconds']:.2f}",
            memory,
            f"{row['latency_p50_ms']:.3f}",
            f"{row['latency_p99_ms']:.3f}",
            f"{row['recall']:.4f}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:  # a log file: do not squeeze the table into 80 columns
        console = Console(width=140)
    if not (args.run_dir / "config.yaml").exists():
        console.print(f"[red]{args.run_dir} is not a run directory[/red] (run benchmarks/homedepot_recipe.py first)")
        return 2
    summary = benchmark(args, console)
    if summary is None:
        return 2
    record.save(args.json, summary)
    print_table(summary, console)
    console.print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

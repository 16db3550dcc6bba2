"""Benchmark: the item index at 1M and 5M items (exact, HNSW, IVF-PQ, SQ8, a Milvus server) on this machine.

The catalog is made of teacher-like vectors: the Home Depot items' teacher embeddings (``--base``, a cached
``.npy`` of the catalog pass), each copied with Gaussian noise (``--noise``, relative to the vector's norm) and
normalised, written chunk by chunk to a memory-mapped file under ``--work`` (a 5M x 384 float32 catalog is
7.7 GB). Queries are other noisy copies of random base items. For each size and kind it reports: build time,
memory (vectors or codes, ids and graph links, from FAISS's own sizes), batch-1 latency p50/p99 at
``--threads`` threads, recall@100 against exact search, and the index side of an update of ``--update-items``
items: (a) what ``harness index --update`` does now (the index built again from the kept vectors: the build
time above) and (b) FAISS's in-place ``add`` and ``remove_ids`` where the kind has them, timed. HNSW is built
up to ``--hnsw-max-items`` (its build is the slowest: FAISS HNSW inserts one item at a time).

``milvus``: a Milvus standalone server started for the run on 127.0.0.1 (the ``milvus`` package's binary, as in
the tests), up to ``--milvus-max-items``, driven through ``MilvusItemIndex`` (HNSW with the same M,
efConstruction and ef): build = insert + the server's index build + load, memory = the server process's resident
memory after the build less before it, batch-1 latency through the network client, and the live update
(``update_live``: upsert ``--update-items`` new items, then delete them). Run it alone.

    python benchmarks/scale.py --base runs/recipe-time/after-homedepot-minilm-cache/embeddings/<file>.npy \\
        [--sizes 1000000,5000000] [--kinds exact,hnsw,ivfpq,sq8,milvus] [--hnsw-max-items 5000000] \\
        [--milvus-max-items 1000000] [--out benchmarks/results/scale.json]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console

from harnesslm.index.item_index import default_nlist, default_pq_m
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("exact", "hnsw", "ivfpq", "sq8", "milvus")
CHUNK = 200_000
console = Console()


def noisy_copies(base: np.ndarray, n: int, noise: float, seed: int, out: np.ndarray | None = None) -> np.ndarray:
    """``n`` normalised noisy copies of random rows of ``base`` (into ``out`` when given), chunk by chunk."""
    rng = np.random.default_rng(seed)
    target = np.empty((n, base.shape[1]), dtype=np.float32) if out is None else out
    scale = noise / np.sqrt(base.shape[1])
    for begin in range(0, n, CHUNK):
        end = min(begin + CHUNK, n)
        rows = base[rng.integers(0, len(base), end - begin)]
        chunk = rows + scale * rng.standard_normal(rows.shape, dtype=np.float32)
        target[begin:end] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return target


def build(kind: str, vectors: np.ndarray, args: argparse.Namespace) -> faiss.Index:
    n, dim = vectors.shape
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construction
        index.hnsw.efSearch = args.ef_search
    elif kind == "ivfpq":
        nlist = min(default_nlist(n), args.max_nlist)
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, default_pq_m(dim), 8, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.max_points_per_centroid = 64  # as ItemIndex.build: PQ k-means on fewer points
        index.pq.cp.min_points_per_centroid = 1
        sample = vectors[np.sort(np.random.default_rng(0).choice(n, min(n, 32 * nlist), replace=False))]
        index.train(np.ascontiguousarray(sample))
        index.nprobe = args.nprobe
    else:
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vectors[: min(n, 100_000)]))
    for begin in range(0, n, CHUNK):
        index.add(np.ascontiguousarray(vectors[begin : begin + CHUNK]))
    return index


def memory_bytes(kind: str, index: faiss.Index) -> int:
    """The bytes the index holds per FAISS's own sizes: vectors or codes, stored ids and graph links."""
    n, dim = index.ntotal, index.d
    if kind == "exact":
        return n * dim * 4
    if kind == "sq8":
        return n * index.sa_code_size()
    if kind == "hnsw":
        return n * dim * 4 + faiss.downcast_index(index).hnsw.neighbors.size() * 4
    ivf = faiss.downcast_index(index)
    return n * (ivf.code_size + 8) + ivf.nlist * dim * 4 + ivf.pq.M * ivf.pq.ksub * ivf.pq.dsub * 4


def latency(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[float, float]:
    for row in queries[:5]:
        index.search(row[None, :], k)
    seconds = []
    for row in queries:
        start = time.perf_counter()
        index.search(row[None, :], k)
        seconds.append(time.perf_counter() - start)
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 99) * 1000)


def in_place_update(kind: str, index: faiss.Index, vectors: np.ndarray, items: int) -> dict:
    """FAISS's own add, then remove_ids, of ``items`` vectors (the index is left with them removed)."""
    n = index.ntotal
    start = time.perf_counter()
    index.add(np.ascontiguousarray(vectors[:items]))
    added = time.perf_counter() - start
    result = {"add_items_per_s": round(items / added)}
    if kind == "hnsw":
        return result | {"remove": "not supported by FAISS HNSW (a rebuild, or a tombstone filter)"}
    start = time.perf_counter()
    removed = index.remove_ids(faiss.IDSelectorRange(n, n + items))
    return result | {"remove_items_per_s": round(removed / (time.perf_counter() - start))}


class MilvusScale:
    """A Milvus standalone server for the run, and the rows measured on it."""

    def __init__(self) -> None:
        import tempfile

        from milvus import MilvusServer

        from load_test import free_port

        self.server = MilvusServer()
        self.server.set_base_dir(tempfile.mkdtemp(prefix="harness-milvus-scale-"))
        self.server.listen_port = free_port()
        self.server.start()
        self.uri = f"http://127.0.0.1:{self.server.listen_port}"

    def resident_bytes(self) -> int:
        import psutil

        return int(psutil.Process(self.server.server_proc.pid).memory_info().rss)

    def row(self, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, fresh: np.ndarray, args) -> dict:
        from harnesslm.index.milvus_index import MilvusItemIndex, connect, milvus_params

        n = len(vectors)
        ids = [str(i) for i in range(n)]
        index_params, search_params = milvus_params("HNSW", args.hnsw_m, args.ef_construction, args.ef_search)
        before = self.resident_bytes()
        began = time.perf_counter()
        index = MilvusItemIndex.build(
            vectors, ids, "scale", uri=self.uri, collection=f"scale_{n}", index_type="HNSW",
            index_params=index_params, search_params=search_params, batch_size=2_000,
        )  # fmt: skip
        seconds = time.perf_counter() - began
        memory = self.resident_bytes() - before
        found, _ = index.search(queries, args.k)
        recall = float(np.mean([len(set(a) & {str(t) for t in b}) / args.k for a, b in zip(found, truth, strict=True)]))
        timed = queries[: args.latency_queries]
        for row in timed[:5]:
            index.search(row[None, :], args.k)
        spent = []
        for row in timed:
            start = time.perf_counter()
            index.search(row[None, :], args.k)
            spent.append(time.perf_counter() - start)
        items = args.update_items
        added = [f"new-{i}" for i in range(items)]
        start = time.perf_counter()
        grown = index.update_live(added, fresh[:items], [], ids + added)
        upsert_s = time.perf_counter() - start
        start = time.perf_counter()
        grown.update_live([], fresh[:0], added, ids)
        delete_s = time.perf_counter() - start
        version = str(connect(self.uri).get_server_version())
        index.client.drop_alias(index.meta.collection)
        index.client.drop_collection(index.meta.physical_collection)
        return {
            "items": n,
            "kind": "milvus",
            "where": f"Milvus server {version}, HNSW, through pymilvus",
            "build_s": round(seconds, 1),
            "memory_mb": round(memory / 2**20, 1),
            "bytes_per_item": round(memory / n, 1),
            "p50_ms": round(float(np.percentile(spent, 50) * 1000), 3),
            "p99_ms": round(float(np.percentile(spent, 99) * 1000), 3),
            f"recall@{args.k}": round(recall, 4),
            "latency_queries": len(timed),
            "update_by_rebuild_items_per_s": round(items / seconds),
            "add_items_per_s": round(items / upsert_s),
            "remove_items_per_s": round(items / delete_s),
        }

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.server.config.base_data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the teacher's catalog embeddings (.npy)")
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--noise", type=float, default=0.5, help="noise norm relative to a unit vector")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall@100")
    parser.add_argument("--latency-queries", type=int, default=100, help="batch-1 timings (fewer for flat scans)")
    parser.add_argument("--update-items", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument(
        "--max-nlist", type=int, default=4096, help="IVF lists at most (k-means on 2 cores grows with lists x sample)"
    )
    parser.add_argument("--hnsw-max-items", type=int, default=1_000_000)
    parser.add_argument("--milvus-max-items", type=int, default=1_000_000, help="largest catalog sent to Milvus")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "scale")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    base = np.load(args.base).astype(np.float32)
    kinds = [k for k in args.kinds.split(",") if k]
    args.work.mkdir(parents=True, exist_ok=True)
    queries = noisy_copies(base, args.queries, args.noise, seed=1)
    fresh = noisy_copies(base, args.update_items, args.noise, seed=2)
    rows = []
    milvus = MilvusScale() if "milvus" in kinds else None
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            path = args.work / f"catalog-{size}.f32"
            vectors = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(size, base.shape[1]))
            began = time.perf_counter()
            noisy_copies(base, size, args.noise, seed=0, out=vectors)
            vectors.flush()
            console.print(f"[bold]{size:,} items[/bold]: written in {time.perf_counter() - began:.0f} s")
            truth = None
            for kind in ["exact", *[k for k in kinds if k != "exact"]]:
                if kind == "hnsw" and size > args.hnsw_max_items:
                    rows.append(
                        {"items": size, "kind": kind, "skipped": f"above --hnsw-max-items {args.hnsw_max_items}"}
                    )
                    continue
                if kind == "milvus":
                    if size > args.milvus_max_items:
                        skipped = f"above --milvus-max-items {args.milvus_max_items}"
                        rows.append({"items": size, "kind": kind, "skipped": skipped})
                    else:
                        rows.append(milvus.row(vectors, queries, truth, fresh, args))  # type: ignore[union-attr]
                        console.print(rows[-1])
                    continue
                began = time.perf_counter()
                index = build(kind, vectors, args)
                seconds = time.perf_counter() - began
                _, found = index.search(queries, args.k)
                if truth is None:
                    truth = found
                recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, truth, strict=True)]))
                timed = queries[
                    : args.latency_queries if kind in ("hnsw", "ivfpq") else max(20, args.latency_queries // 5)
                ]
                p50, p99 = latency(index, timed, args.k)
                row = {
                    "items": size,
                    "kind": kind,
                    "build_s": round(seconds, 1),
                    "memory_mb": round(memory_bytes(kind, index) / 2**20, 1),
                    "bytes_per_item": round(memory_bytes(kind, index) / size, 1),
                    "p50_ms": round(p50, 3),
                    "p99_ms": round(p99, 3),
                    f"recall@{args.k}": round(recall, 4),
                    "latency_queries": len(timed),
                    "update_by_rebuild_items_per_s": round(args.update_items / seconds),
                    **in_place_update(kind, index, fresh, args.update_items),
                }
                rows.append(row)
                console.print(row)
                del index
                gc.collect()
                if kind == "exact" and "exact" not in kinds:
                    rows.pop()
            del vectors
            gc.collect()
            path.unlink()
        shutil.rmtree(args.work, ignore_errors=True)
    finally:
        if milvus is not None:
            milvus.stop()
    figures = {
        "base": str(args.base),
        "base_items": len(base),
        "dim": int(base.shape[1]),
        "noise": args.noise,
        "queries": args.queries,
        "threads": args.threads,
        "settings": {
            "hnsw_m": args.hnsw_m,
            "ef_construction": args.ef_construction,
            "ef_search": args.ef_search,
            "nprobe": args.nprobe,
            "max_nlist": args.max_nlist,
            "k": args.k,
        },
        "rows": rows,
    }
    record.save(args.out, figures)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure an item index the way the serving path uses it: size, build time, batch-1 latency, recall vs exact.

One number per question a deployment asks: how much memory does it take, how long to build, how fast does a
single query come back (p50/p99), and how much of the exact top-k does it find.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from harnesslm.index.item_index import ItemIndex, SearchableIndex, index_recall


@dataclass(frozen=True)
class IndexProfile:
    kind: str
    size: int
    build_seconds: float
    memory_bytes: int | None  # serialized FAISS index; None for a server-side index (Milvus)
    latency_p50_ms: float
    latency_p99_ms: float
    recall: float  # recall@k against exact search over the same embeddings
    k: int
    queries: int

    def as_dict(self) -> dict:
        return asdict(self)


def profile_index(
    index: SearchableIndex,
    exact: SearchableIndex,
    queries: np.ndarray,
    k: int = 100,
    warmup: int = 10,
    latency_queries: int | None = None,
) -> IndexProfile:
    """Profile ``index`` against the ``exact`` index of the same embeddings with ``queries`` (one per row).

    Latency is timed one query at a time (batch 1, the online case) after ``warmup`` untimed searches, over
    the first ``latency_queries`` rows (all by default); recall@``k`` uses every row, searched in one batch.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if len(queries) == 0:
        raise ValueError("profiling an index needs at least one query")
    timed = queries[:latency_queries] if latency_queries else queries
    for row in timed[:warmup]:
        index.search(row[None, :], k)
    seconds = np.empty(len(timed))
    for i, row in enumerate(timed):
        start = time.perf_counter()
        index.search(row[None, :], k)
        seconds[i] = time.perf_counter() - start
    meta = index.meta
    return IndexProfile(
        kind=str(meta.kind),
        size=int(meta.size),
        build_seconds=float(meta.build_seconds),
        memory_bytes=index.memory_bytes if isinstance(index, ItemIndex) else None,
        latency_p50_ms=float(np.percentile(seconds, 50) * 1000),
        latency_p99_ms=float(np.percentile(seconds, 99) * 1000),
        recall=index_recall(index, exact, queries, k),
        k=k,
        queries=len(queries),
    )

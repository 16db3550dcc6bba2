"""Encode a query and search the item index: the online path, and what end-to-end latency measures.

:class:`Searcher` is dense retrieval (a query encoder over the teacher's item index); :class:`HybridSearcher`
adds the catalog's BM25 index beside it and fuses the two rankings (``mode="dense" | "lexical" | "hybrid"``),
the same search the service runs for ``mode=...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from sentence_transformers import SentenceTransformer

from harnesslm.encoding.cache import encode
from harnesslm.index.bm25 import BM25Retriever
from harnesslm.index.fusion import FUSION_DEPTH, fuse_scored
from harnesslm.index.item_index import ItemIndex

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = ("dense", "lexical", "hybrid")
Found = tuple[list[list[str]], Sequence[Sequence[float]]]
"""Item ids per query, best first, and their scores (cosine, BM25 or fused reciprocal-rank scores)."""


class LexicalIndex(Protocol):
    """What hybrid search needs from a lexical index: ``BM25Retriever`` (bm25s), or Milvus's full-text search."""

    ids: list[str]

    def rows_of(self, item_ids: Sequence[str]) -> np.ndarray: ...

    def search(
        self, queries: Sequence[str], k: int, allowed_rows: np.ndarray | None = None
    ) -> list[list[tuple[str, float]]]: ...


class QueryEncoder(Protocol):
    """Anything that turns queries into L2-normalised float32 embeddings in the index's space (an exported
    ONNX encoder, for instance); a ``SentenceTransformer`` is used directly."""

    def encode(self, queries: list[str], batch_size: int = ...) -> np.ndarray: ...


@dataclass
class Searcher:
    encoder: SentenceTransformer | QueryEncoder
    index: ItemIndex

    def encode(self, queries: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not isinstance(self.encoder, SentenceTransformer):
            return np.asarray(self.encoder.encode(list(queries), batch_size=batch_size), dtype=np.float32)
        return encode(self.encoder, queries, batch_size=batch_size, role="query")  # with its query prompt, if any

    def search(
        self, queries: Sequence[str], k: int = 10, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` item ids and scores for each query (optionally among ``allowed_rows`` only)."""
        return self.index.search(self.encode(queries), k, allowed_rows=allowed_rows)

    def search_one(self, query: str, k: int = 10) -> list[str]:
        return self.search([query], k)[0][0]


@dataclass
class HybridSearcher:
    """Dense retrieval and BM25 side by side, fused by weighted reciprocal-rank fusion.

    ``weight`` is the dense share of the fusion (0: BM25 alone, 1: dense alone), chosen on validation
    queries (``harness evaluate`` records it per dense system; ``harnesslm.pipeline.serve.hybrid_for_run``
    reads it). Each list is read ``depth`` deep before fusing, the depth the weight was chosen at.

    Example::

        hybrid = HybridSearcher(Searcher(student, run.index), run.lexical_index, weight=0.6)
        ids, scores = hybrid.search(["cordless drill 20v"], k=10, mode="hybrid")
    """

    dense: Searcher
    lexical: BM25Retriever | LexicalIndex
    weight: float
    depth: int = FUSION_DEPTH
    _lexical_rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"the dense weight must be in [0, 1], got {self.weight}")
        try:  # dense index row -> BM25 row, so a filter given as index rows applies to both
            self._lexical_rows = self.lexical.rows_of(list(self.dense.index.item_ids))
        except KeyError as error:
            raise ValueError(f"item {error.args[0]!r} is in the dense index but not in the BM25 index") from None

    def search(
        self, queries: Sequence[str], k: int = 10, mode: Mode = "hybrid", allowed_rows: np.ndarray | None = None
    ) -> Found:
        """Top-``k`` ids and scores per query by ``mode`` (optionally among ``allowed_rows`` of the dense index)."""
        if mode == "dense":
            return self.dense.search(queries, k, allowed_rows)
        if mode == "lexical":
            return self.search_lexical(queries, k, allowed_rows)
        if mode != "hybrid":
            raise ValueError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
        depth = max(k, self.depth)
        dense_ids, _ = self.dense.search(queries, depth, allowed_rows)
        lexical_ids, _ = self.search_lexical(queries, depth, allowed_rows)
        return self.fuse(dense_ids, lexical_ids, k)

    def search_lexical(self, queries: Sequence[str], k: int, allowed_rows: np.ndarray | None = None) -> Found:
        """BM25 alone: ids and BM25 scores (``allowed_rows`` are rows of the dense index)."""
        rows = None if allowed_rows is None else self._lexical_rows[allowed_rows]
        hits = self.lexical.search(queries, k, allowed_rows=rows)
        return [[item for item, _ in h] for h in hits], [[score for _, score in h] for h in hits]

    def fuse(self, dense_ids: Sequence[Sequence[str]], lexical_ids: Sequence[Sequence[str]], k: int) -> Found:
        """The top ``k`` of each query's fused ranking, with the fused reciprocal-rank scores."""
        fused = [fuse_scored(d, lex, self.weight, k) for d, lex in zip(dense_ids, lexical_ids, strict=True)]
        return [[item for item, _ in f] for f in fused], [[score for _, score in f] for f in fused]

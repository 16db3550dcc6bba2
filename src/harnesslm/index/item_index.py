"""The teacher's item index: FAISS inner-product search over normalised item embeddings, with item ids.

The index remembers the fingerprint of the embedding space it was built in (the teacher's), so a student
aligned to another teacher cannot silently search it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from harnesslm.atomic import atomic_directory

IndexKind = Literal["exact", "hnsw"]


@dataclass(frozen=True)
class IndexMeta:
    kind: IndexKind
    dim: int
    size: int
    space: str  # fingerprint of the embedding space (the teacher's weights)
    build_seconds: float
    hnsw_m: int | None = None
    hnsw_ef_search: int | None = None


class IndexMismatchError(RuntimeError):
    """A query encoder and an index come from different embedding spaces."""


class ItemIndex:
    """Item ids plus a FAISS index over their embeddings; ``search`` returns ids, not row numbers."""

    def __init__(self, index: faiss.Index, item_ids: Sequence[str], meta: IndexMeta) -> None:
        if index.ntotal != len(item_ids):
            raise ValueError(f"index holds {index.ntotal} vectors but {len(item_ids)} ids were given")
        self.index = index
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.meta = meta

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        item_ids: Sequence[str],
        space: str,
        kind: IndexKind = "exact",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 128,
    ) -> ItemIndex:
        """Exact (``IndexFlatIP``) by default; ``hnsw`` trades a little recall for sub-linear search."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        dim = embeddings.shape[1]
        start = time.perf_counter()
        if kind == "exact":
            index: faiss.Index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = hnsw_ef_construction
            index.hnsw.efSearch = hnsw_ef_search
        else:
            raise ValueError(f"unknown index kind {kind!r}: use 'exact' or 'hnsw'")
        index.add(embeddings)
        meta = IndexMeta(
            kind=kind,
            dim=dim,
            size=len(item_ids),
            space=space,
            build_seconds=time.perf_counter() - start,
            hnsw_m=hnsw_m if kind == "hnsw" else None,
            hnsw_ef_search=hnsw_ef_search if kind == "hnsw" else None,
        )
        return cls(index, item_ids, meta)

    def search(
        self, queries: np.ndarray, k: int, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` item ids and scores for each query embedding (rows of ``queries``).

        ``allowed_rows`` (row positions in the index) restricts the search to those items, inside FAISS (an
        ``IDSelectorBatch``), so a filter never returns fewer than ``k`` items while enough match. A query can
        get fewer than ``k`` ids; its missing tail has score ``-inf``-like values from FAISS.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.meta.dim:
            raise IndexMismatchError(f"query embeddings have {queries.shape[1]} dimensions, the index {self.meta.dim}")
        k = min(k, self.meta.size)
        params = None
        if allowed_rows is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_rows, dtype=np.int64))
            params = _search_parameters(self.index, selector)
        scores, rows = self.index.search(queries, k, params=params)
        ids = [[self.item_ids[r] for r in row if r >= 0] for row in rows]
        return ids, scores

    def check_space(self, space: str) -> None:
        if space != self.meta.space:
            raise IndexMismatchError(
                f"the query encoder was trained for teacher space {space}, but the index was built in "
                f"{self.meta.space}: rebuild the index or re-align the student"
            )

    def save(self, directory: Path) -> None:
        """Write ``index.faiss``, ``ids.json``, ``meta.json`` into a temporary folder and rename it in place."""
        with atomic_directory(Path(directory)) as tmp:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            (tmp / "ids.json").write_text(json.dumps(list(self.item_ids)), encoding="utf-8")
            (tmp / "meta.json").write_text(json.dumps(asdict(self.meta), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> ItemIndex:
        directory = Path(directory)
        meta = IndexMeta(**json.loads((directory / "meta.json").read_text(encoding="utf-8")))
        ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))
        index = faiss.read_index(str(directory / "index.faiss"))
        if isinstance(index, faiss.IndexHNSW) and meta.hnsw_ef_search:
            index.hnsw.efSearch = meta.hnsw_ef_search
        return cls(index, ids, meta)


def _search_parameters(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters:
    """FAISS wants the parameter class that matches the index type to carry a selector."""
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
    return faiss.SearchParameters(sel=selector)


def recall_against_exact(approx: list[list[str]], exact: list[list[str]], k: int) -> float:
    """Mean overlap of the approximate top-k with the exact top-k (the usual ANN recall@k)."""
    if not exact:
        return float("nan")
    overlaps = [len(set(a[:k]) & set(e[:k])) / max(len(e[:k]), 1) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(overlaps))


def index_recall(approx: ItemIndex, exact: ItemIndex, queries: np.ndarray, k: int) -> float:
    """Recall@k of ``approx`` against ``exact`` for the same query embeddings (ANN quality, not relevance)."""
    approx_ids, _ = approx.search(queries, k)
    exact_ids, _ = exact.search(queries, k)
    return recall_against_exact(approx_ids, exact_ids, k)

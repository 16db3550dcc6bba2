"""The teacher's item index: FAISS inner-product search over normalised item embeddings, with item ids.

The index remembers the fingerprint of the embedding space it was built in (the teacher's), so a student
aligned to another teacher cannot silently search it.

Kinds: ``exact`` (flat, brute force), ``hnsw`` (graph, sub-linear, full vectors), ``ivfpq`` (inverted lists
+ product quantization: a few bytes per item, the smallest and fastest, lossy) and ``sq8`` (every dimension
stored as one byte, brute-force scan: 4x smaller than exact with near-exact ranking).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import faiss
import numpy as np

from harnesslm.atomic import atomic_directory
from harnesslm.config import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

IndexKind = Literal["exact", "hnsw", "ivfpq", "sq8"]
INDEX_KINDS: tuple[str, ...] = ("exact", "hnsw", "ivfpq", "sq8")


@dataclass(frozen=True)
class IndexMeta:
    """What was built and with which settings; saved as ``meta.json`` and used to restore search settings."""

    kind: IndexKind
    dim: int
    size: int
    space: str  # fingerprint of the embedding space (the teacher's weights)
    build_seconds: float
    hnsw_m: int | None = None
    hnsw_ef_search: int | None = None
    hnsw_ef_construction: int | None = None
    ivf_nlist: int | None = None
    ivf_nprobe: int | None = None
    pq_m: int | None = None
    pq_nbits: int | None = None
    source_dim: int | None = None  # Matryoshka: the embeddings' full dimension when the index keeps the first `dim`


class IndexMismatchError(RuntimeError):
    """A query encoder and an index come from different embedding spaces."""


class SearchableIndex(Protocol):
    """What searchers, evaluation and mining need from an item index (FAISS ``ItemIndex`` or Milvus)."""

    item_ids: np.ndarray
    meta: Any  # has at least kind, dim, size, space, build_seconds

    def search(
        self, queries: np.ndarray, k: int, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]: ...

    def check_space(self, space: str) -> None: ...


def check_space(encoder_space: str, index_space: str, backend: str = "index") -> None:
    """Raise :class:`IndexMismatchError` unless a query encoder and an index share the teacher's space."""
    if encoder_space != index_space:
        raise IndexMismatchError(
            f"the query encoder was trained for teacher space {encoder_space}, but the {backend} was built in "
            f"{index_space}: rebuild the index or re-align the student"
        )


class ItemIndex:
    """Item ids plus a FAISS index over their embeddings; ``search`` returns ids, not row numbers.

    Row ``r`` (the item ``item_ids[r]``) is the FAISS vector ``r``, except in an HNSW graph changed in place: FAISS
    cannot take a node out of a graph, so a removed or changed item's node stays as a tombstone, never returned,
    and ``labels[r]`` names the node of row ``r`` (``labels.npy`` beside the index).
    """

    def __init__(
        self, index: faiss.Index, item_ids: Sequence[str], meta: IndexMeta, labels: np.ndarray | None = None
    ) -> None:
        if labels is None and index.ntotal != len(item_ids):
            raise ValueError(f"index holds {index.ntotal} vectors but {len(item_ids)} ids were given")
        if labels is not None and (len(labels) != len(item_ids) or (len(labels) and labels.max() >= index.ntotal)):
            raise ValueError(f"{len(labels)} node labels for {len(item_ids)} ids in an index of {index.ntotal}")
        self.index = index
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.meta = meta
        self.labels: np.ndarray | None = None
        self._row_of_label: np.ndarray | None = None
        self._live: faiss.IDSelector | None = None
        if labels is not None and not np.array_equal(labels, np.arange(index.ntotal)):
            self.labels = np.ascontiguousarray(labels, dtype=np.int64)
            self._row_of_label = np.full(index.ntotal, -1, dtype=np.int64)
            self._row_of_label[self.labels] = np.arange(len(self.labels))
            live = np.zeros(index.ntotal, dtype=bool)
            live[self.labels] = True
            self._live_bits = np.packbits(live, bitorder="little")  # kept here: FAISS holds only a pointer to it
            self._live = faiss.IDSelectorBitmap(len(self._live_bits), faiss.swig_ptr(self._live_bits))

    @property
    def tombstones(self) -> int:
        """Graph nodes of items removed or changed in place (searched past, never returned)."""
        return int(self.index.ntotal - len(self.item_ids))

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        item_ids: Sequence[str],
        space: str,
        kind: IndexKind = "exact",
        hnsw_m: int = HNSW_M,
        hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION,
        hnsw_ef_search: int = HNSW_EF_SEARCH,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 32,
        pq_m: int | None = None,
        pq_nbits: int = 8,
        train_size: int | None = 100_000,
        seed: int = 0,
        dim: int | None = None,
        source_dim: int | None = None,
    ) -> ItemIndex:
        """Exact (``IndexFlatIP``) by default; ``hnsw`` trades a little recall for sub-linear search.

        ``dim`` (Matryoshka): keep only the first ``dim`` dimensions of each embedding, re-normalised; queries of
        the full dimension are cut the same way at search time. Worth it for a teacher trained with
        Matryoshka representation learning (EmbeddingGemma: 768, 512, 256, 128), whose leading dimensions
        carry most of the meaning. ``source_dim`` says the embeddings given are already cut from that many.

        ``ivfpq``: ``ivf_nlist`` inverted lists (default about 4 sqrt(n), at most n / 39 so that k-means has
        enough points per centroid), ``pq_m`` sub-quantizers of ``pq_nbits`` bits (default dim / 4 bytes per
        item), ``ivf_nprobe`` lists scanned per query. ``sq8``: one byte per dimension, brute-force scan. Both
        train on the embeddings, or on ``train_size`` of them drawn at random (``seed``) for large catalogs.
        """
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        full = embeddings.shape[1]
        if dim is not None and dim < full:
            embeddings, source_dim = matryoshka(embeddings, dim), full
        elif dim is not None and dim > full:
            raise ValueError(f"cannot keep {dim} dimensions of {full}-dimensional embeddings")
        n, dim = embeddings.shape
        start = time.perf_counter()
        extra: dict[str, int | None] = {"source_dim": source_dim} if source_dim else {}
        if kind == "exact":
            index: faiss.Index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = hnsw_ef_construction
            index.hnsw.efSearch = hnsw_ef_search
            extra |= {"hnsw_m": hnsw_m, "hnsw_ef_search": hnsw_ef_search, "hnsw_ef_construction": hnsw_ef_construction}
        elif kind == "ivfpq":
            nlist = ivf_nlist or default_nlist(n)
            m = pq_m or default_pq_m(dim)
            _check_ivfpq(n, dim, nlist, m, pq_nbits)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, pq_nbits, faiss.METRIC_INNER_PRODUCT)
            # PQ codebooks: 64 points per code is plenty in a few dimensions, and k-means there dominates the build
            # time (256 points per code, FAISS's default, takes minutes for a 50k catalog); no warning per sub-quantizer
            index.pq.cp.max_points_per_centroid = 64
            index.pq.cp.min_points_per_centroid = 1
            index.train(_training_sample(embeddings, train_size, seed))
            index.nprobe = min(ivf_nprobe, nlist)
            extra |= {"ivf_nlist": nlist, "ivf_nprobe": index.nprobe, "pq_m": m, "pq_nbits": pq_nbits}
        elif kind == "sq8":
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            index.train(_training_sample(embeddings, train_size, seed))
        else:
            raise ValueError(f"unknown index kind {kind!r}: use one of {', '.join(INDEX_KINDS)}")
        index.add(embeddings)
        meta = IndexMeta(
            kind=kind,
            dim=dim,
            size=len(item_ids),
            space=space,
            build_seconds=time.perf_counter() - start,
            **extra,  # type: ignore[arg-type]
        )
        return cls(index, item_ids, meta)

    def tune(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search-time knob of an IVF (``nprobe``) or HNSW (``ef_search``) index; kept on save."""
        if nprobe is not None:
            if self.meta.kind != "ivfpq":
                raise ValueError(f"nprobe applies to an ivfpq index, not {self.meta.kind}")
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = min(nprobe, ivf.nlist)
            self.meta = replace(self.meta, ivf_nprobe=int(ivf.nprobe))
        if ef_search is not None:
            if self.meta.kind != "hnsw":
                raise ValueError(f"ef_search applies to an hnsw index, not {self.meta.kind}")
            self.index.hnsw.efSearch = ef_search
            self.meta = replace(self.meta, hnsw_ef_search=ef_search)

    def search(
        self, queries: np.ndarray, k: int, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` item ids and scores for each query embedding (rows of ``queries``).

        ``allowed_rows`` (row positions in the index) restricts the search to those items, inside FAISS (an
        ``IDSelectorBatch``), so a filter never returns fewer than ``k`` items while enough match. A query can
        get fewer than ``k`` ids; its missing tail has score ``-inf``-like values from FAISS. An ``ivfpq`` index
        only looks in its ``nprobe`` nearest lists, so a very selective filter can leave it short of ``k``.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.meta.source_dim and queries.shape[1] == self.meta.source_dim:
            queries = matryoshka(queries, self.meta.dim)
        if queries.shape[1] != self.meta.dim:
            raise IndexMismatchError(f"query embeddings have {queries.shape[1]} dimensions, the index {self.meta.dim}")
        k = min(k, self.meta.size)
        selector = self._live
        if allowed_rows is not None:
            rows = np.ascontiguousarray(allowed_rows, dtype=np.int64)
            selector = faiss.IDSelectorBatch(rows if self.labels is None else self.labels[rows])
        params = None if selector is None else _search_parameters(self.index, selector)
        scores, found = self.index.search(queries, k, params=params)
        if self._row_of_label is not None:
            found = np.where(found >= 0, self._row_of_label[np.maximum(found, 0)], -1)
        ids = [[self.item_ids[r] for r in row if r >= 0] for row in found]
        return ids, scores

    def check_space(self, space: str) -> None:
        check_space(space, self.meta.space)

    IN_PLACE_KINDS: ClassVar[tuple[str, ...]] = ("exact", "sq8", "ivfpq", "hnsw")
    """Kinds :meth:`update_in_place` changes without a rebuild (HNSW with tombstones)."""

    def update_in_place(
        self,
        changed_rows: np.ndarray,
        changed_vectors: np.ndarray,
        removed_rows: np.ndarray,
        added_ids: Sequence[str],
        added_vectors: np.ndarray,
    ) -> ItemIndex:
        """This index after a catalog change, made in place (no training, no pass over the kept vectors' codes
        beyond moving them): the vectors of ``changed_rows`` replaced, ``removed_rows`` taken out (later rows
        move up, as the catalog's do), ``added_ids`` appended. Rows are positions before the change.

        Exact and SQ8 overwrite the stored vectors or codes and compact; IVF-PQ removes the changed and
        removed items from their lists, renumbers the rest and adds the changed ones back under their new
        row with the trained quantizer (its lists, trained on the old catalog, age: rebuild from time to time).
        HNSW inserts the changed and added items as new nodes and leaves the old nodes of changed and removed
        items as tombstones (:attr:`tombstones`; searched past, never returned: rebuild once they are many).
        """
        kind = self.meta.kind
        if kind not in self.IN_PLACE_KINDS:
            raise ValueError(f"a {kind} index cannot be updated in place: build it again")
        changed_rows = np.asarray(changed_rows, dtype=np.int64)
        removed_rows = np.unique(np.asarray(removed_rows, dtype=np.int64))
        changed_vectors, added_vectors = self._cut(changed_vectors), self._cut(added_vectors)
        if kind == "hnsw":
            return self._graph_updated(changed_rows, changed_vectors, removed_rows, added_ids, added_vectors)
        index, n = self.index, self.index.ntotal
        if kind in ("exact", "sq8") and len(changed_rows):
            codes = faiss.rev_swig_ptr(faiss.downcast_index(index).codes.data(), n * index.sa_code_size())
            codes.reshape(n, index.sa_code_size())[changed_rows] = index.sa_encode(changed_vectors)
        if kind == "ivfpq":
            out = np.union1d(removed_rows, changed_rows)
            index.remove_ids(faiss.IDSelectorBatch(out))
            _renumber_ivf(faiss.extract_index_ivf(index), removed_rows)
            if len(changed_rows):
                moved = changed_rows - np.searchsorted(removed_rows, changed_rows)
                index.add_with_ids(changed_vectors, moved)
        elif len(removed_rows):
            index.remove_ids(faiss.IDSelectorBatch(removed_rows))  # flat codes: later rows move up
        if len(added_ids):
            kept = n - len(removed_rows)
            if kind == "ivfpq":
                index.add_with_ids(added_vectors, np.arange(kept, kept + len(added_ids), dtype=np.int64))
            else:
                index.add(added_vectors)
        ids = np.delete(self.item_ids, removed_rows).tolist() + [str(i) for i in added_ids]
        return ItemIndex(index, ids, replace(self.meta, size=len(ids)))

    def _graph_updated(
        self,
        changed_rows: np.ndarray,
        changed_vectors: np.ndarray,
        removed_rows: np.ndarray,
        added_ids: Sequence[str],
        added_vectors: np.ndarray,
    ) -> ItemIndex:
        """The HNSW change of :meth:`update_in_place`: new nodes, old ones left as tombstones."""
        labels = np.arange(self.index.ntotal, dtype=np.int64) if self.labels is None else self.labels.copy()
        first = self.index.ntotal
        if len(changed_rows):
            self.index.add(changed_vectors)
            labels[changed_rows] = np.arange(first, first + len(changed_rows))
        first = self.index.ntotal
        if len(added_ids):
            self.index.add(added_vectors)
        labels = np.concatenate([np.delete(labels, removed_rows), np.arange(first, first + len(added_ids))])
        ids = np.delete(self.item_ids, removed_rows).tolist() + [str(i) for i in added_ids]
        return ItemIndex(self.index, ids, replace(self.meta, size=len(ids)), labels)

    def _cut(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors as the index stores them: float32, cut to a Matryoshka index's dimension."""
        vectors = np.ascontiguousarray(np.reshape(vectors, (-1, vectors.shape[-1])), dtype=np.float32)
        if self.meta.source_dim and vectors.shape[1] != self.meta.dim:
            vectors = matryoshka(vectors, self.meta.dim)
        return vectors

    def vectors(self) -> np.ndarray:
        """The stored item embeddings, in row order (exact and hnsw keep them whole; the others do not)."""
        if self.meta.kind not in ("exact", "hnsw"):
            raise ValueError(f"a {self.meta.kind} index keeps compressed codes, not the item embeddings")
        stored = self.index.reconstruct_n(0, self.index.ntotal)
        return stored if self.labels is None else stored[self.labels]

    def exact_view(self) -> ItemIndex:
        """Exact search over the same vectors, sharing their memory: an HNSW graph's flat storage, or itself."""
        if self.meta.kind == "exact":
            return self
        if self.meta.kind != "hnsw":
            raise ValueError(f"a {self.meta.kind} index has no exact view: it does not keep the embeddings")
        flat = faiss.downcast_index(self.index.storage)
        meta = replace(self.meta, kind="exact", hnsw_m=None, hnsw_ef_search=None)
        view = ItemIndex(flat, list(self.item_ids), meta, self.labels)
        view._owner = self  # the graph owns the storage: keep it alive as long as the view
        return view

    def save(self, directory: Path) -> None:
        """Write ``index.faiss``, ``ids.json``, ``meta.json`` into a temporary folder and rename it in place."""
        with atomic_directory(Path(directory)) as tmp:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            (tmp / "ids.json").write_text(json.dumps(list(self.item_ids)), encoding="utf-8")
            if self.labels is not None:
                np.save(tmp / "labels.npy", self.labels)
            (tmp / "meta.json").write_text(json.dumps(asdict(self.meta), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> ItemIndex:
        """A saved FAISS index (``harnesslm.index.load_item_index`` opens a Milvus one as well)."""
        directory = Path(directory)
        raw = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        if raw.get("kind") not in INDEX_KINDS:
            raise ValueError(
                f"{directory} holds a {raw.get('kind')!r} index, not a FAISS one: open it with "
                "harnesslm.index.load_item_index"
            )
        meta = IndexMeta(**raw)
        ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))
        index = faiss.read_index(str(directory / "index.faiss"))
        if isinstance(index, faiss.IndexHNSW) and meta.hnsw_ef_search:
            index.hnsw.efSearch = meta.hnsw_ef_search
        if isinstance(index, faiss.IndexIVF) and meta.ivf_nprobe:
            index.nprobe = meta.ivf_nprobe
        labels = np.load(directory / "labels.npy") if (directory / "labels.npy").exists() else None
        return cls(index, ids, meta, labels)

    @property
    def memory_bytes(self) -> int:
        """Size of the serialized FAISS index: what it takes in RAM and on disk (ids not counted)."""
        return int(faiss.serialize_index(self.index).size)


def _renumber_ivf(ivf: faiss.IndexIVF, removed: np.ndarray) -> None:
    """Shift every stored id down by the number of ``removed`` rows before it, list by list, in place."""
    lists = ivf.invlists
    for list_no in range(ivf.nlist):
        size = lists.list_size(list_no)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size)
            ids -= np.searchsorted(removed, ids)


def matryoshka(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` dimensions of each row, L2-normalised again (so inner product is still cosine)."""
    cut = np.ascontiguousarray(embeddings[:, :dim], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, 1e-12)


def default_nlist(n: int) -> int:
    """About 4 sqrt(n) inverted lists, but at most n / 39 so every centroid gets enough training points."""
    return max(1, min(int(4 * np.sqrt(n)), n // 39))


def default_pq_m(dim: int) -> int:
    """Sub-quantizers for PQ: the largest divisor of ``dim`` up to dim / 4 (4 dimensions per byte code)."""
    return max(m for m in range(1, max(dim // 4, 1) + 1) if dim % m == 0)


def _check_ivfpq(n: int, dim: int, nlist: int, pq_m: int, nbits: int) -> None:
    if dim % pq_m:
        raise ValueError(f"ivfpq: pq_m={pq_m} must divide the embedding dimension {dim}")
    if n < max(nlist, 2**nbits):
        raise ValueError(
            f"ivfpq needs at least max(nlist, 2**nbits) = {max(nlist, 2**nbits)} items to train, got {n}: "
            "use exact, hnsw or sq8 for a catalog this small"
        )


def _training_sample(embeddings: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """All embeddings, or ``size`` rows drawn without replacement (k-means on millions of rows is wasted time)."""
    if size is None or len(embeddings) <= size:
        return embeddings
    rows = np.sort(np.random.default_rng(seed).choice(len(embeddings), size=size, replace=False))
    return np.ascontiguousarray(embeddings[rows])


def _search_parameters(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters:
    """FAISS wants the parameter class that matches the index type to carry a selector."""
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    if isinstance(index, faiss.IndexIVF):  # keeps the index's own nprobe (the parameters would reset it to 1)
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
    return faiss.SearchParameters(sel=selector)


def recall_against_exact(approx: list[list[str]], exact: list[list[str]], k: int) -> float:
    """Mean overlap of the approximate top-k with the exact top-k (the usual ANN recall@k)."""
    if not exact:
        return float("nan")
    overlaps = [len(set(a[:k]) & set(e[:k])) / max(len(e[:k]), 1) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(overlaps))


def index_recall(approx: SearchableIndex, exact: SearchableIndex, queries: np.ndarray, k: int) -> float:
    """Recall@k of ``approx`` against ``exact`` for the same query embeddings (ANN quality, not relevance)."""
    approx_ids, _ = approx.search(queries, k)
    exact_ids, _ = exact.search(queries, k)
    return recall_against_exact(approx_ids, exact_ids, k)

"""The teacher's item index in Milvus: the same ``search`` as :class:`ItemIndex`, served by a vector database.

Use it when the catalog outgrows one machine's memory or when several services search one index. The uri is
either a local Milvus Lite folder ending in ``.db`` (embedded, one process at a time, for tests and small
catalogs) or a Milvus standalone / cluster address such as ``http://host:19530`` (with a token when the
server has authentication on; default: the ``MILVUS_TOKEN`` environment variable).

Layout in Milvus: one collection per build, named ``<collection>__v<time>_<random>``, with the item id as a VARCHAR
primary key (filters name item ids) and the embedding (metric IP); an alias ``<collection>`` is switched to it
only after every row is inserted, indexed and loaded, so readers never see a half-built index and a rebuild
replaces the old one in one step. The embedding space's fingerprint is a collection property (and in
``meta.json``), so a search from another teacher's space fails.

A catalog change is applied to the live collection (:meth:`MilvusItemIndex.update_live`: Milvus upsert and
delete, no re-insert of the kept items). Milvus has no transaction over several calls, so the run keeps a journal
(``update.pending.json``) until the change is whole; upsert and delete are idempotent, and the same update run
again completes one that was cut off. A searcher opened before the change never returns an item it does not know
(it drops ids outside its own list), so a service keeps answering until it swaps to the new description.

Milvus Lite (milvus-lite 3.2) supports FLAT (brute force), AUTOINDEX (HNSW there), HNSW, HNSW_SQ, IVF_FLAT and
IVF_SQ8 with metric IP; IVF_PQ is not implemented and fails in the background, so it is refused here.

Full-text search: built with the item texts (``texts=``), the collection also holds each text with Milvus's
analyzer on and a sparse vector its built-in BM25 function fills, so Milvus itself answers the lexical half of a
hybrid search (:meth:`MilvusItemIndex.full_text`). Milvus Lite 3.2.2 supports this (checked here: BM25 search
and ``hybrid_search`` with an ``RRFRanker`` both work; its BM25 distances come back negated, best first).
Milvus's own ``hybrid_search`` fuses with unweighted RRF or a weighted sum of normalised scores, not weighted
RRF, so the service asks Milvus for both ranked lists and fuses them with the validation-chosen weight
(``harnesslm.index.fusion``), the same fusion as for FAISS + bm25s.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from harnesslm import extras
from harnesslm.atomic import write_text
from harnesslm.index.item_index import IndexMismatchError, check_space

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "harness_items"
SPACE_PROPERTY = "harness_space"
LITE_INDEX_TYPES = ("FLAT", "AUTOINDEX", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8")
MAX_TOP_K = 16_384  # Milvus's limit on ``limit`` (topk) per search
MAX_QUERIES_PER_CALL = 1_024
PENDING_UPDATE = "update.pending.json"
"""The journal of a live update in the run's index folder: present while Milvus may hold part of a change."""
SEARCH_CONSISTENCY = "Bounded"
"""Searches read what the server had a moment ago, not what it has now: every row of a build is flushed and loaded
before the alias moves to it, so nothing is missed, and a Strong read waits for the server's next time tick on every
query (on a Milvus 2.3.5 server here, batch-1 p50 393 ms with Strong reads over 54,667 items:
``benchmarks/results/milvus_server_strong.json``, written at commit dbb7607, whose reads were Strong)."""
MISSING_SCORE = float(-np.finfo(np.float32).max)  # what FAISS puts where a query has fewer than k results
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class MilvusIndexMeta:
    """What was built where; saved as ``meta.json`` in the run's index folder (never the token)."""

    kind: Literal["milvus"]
    dim: int
    size: int
    space: str
    build_seconds: float
    uri: str
    collection: str  # the alias other services search
    physical_collection: str  # the collection this build wrote (what ``ids.json`` describes)
    index_type: str
    index_params: dict[str, Any] = field(default_factory=dict)
    search_params: dict[str, Any] = field(default_factory=dict)
    full_text: bool = False  # the collection holds the item texts and their BM25 sparse vectors


def is_lite_uri(uri: str | Path) -> bool:
    """A local path (Milvus Lite) rather than a server address."""
    return "://" not in str(uri)


def milvus_params(
    index_type: str,
    hnsw_m: int = 32,
    hnsw_ef_construction: int = 80,
    hnsw_ef_search: int = 128,
    nlist: int = 1024,
    nprobe: int = 32,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Milvus build and search parameters for ``index_type`` from the same settings the FAISS kinds use."""
    index_type = index_type.upper()
    if index_type in ("HNSW", "HNSW_SQ"):
        return {"M": hnsw_m, "efConstruction": hnsw_ef_construction}, {"ef": hnsw_ef_search}
    if index_type.startswith("IVF_"):
        return {"nlist": nlist}, {"nprobe": nprobe}
    return {}, {}


def connect(uri: str | Path, token: str | None = None) -> MilvusClient:
    """A ``MilvusClient`` for a Milvus Lite folder (``*.db``) or a server; token defaults to ``$MILVUS_TOKEN``."""
    extras.require("milvus", "the Milvus backend", ("pymilvus",))
    from pymilvus import MilvusClient

    uri = str(uri)
    if is_lite_uri(uri):
        if not uri.endswith(".db"):
            raise ValueError(f"a Milvus Lite uri is a local path ending in .db, got {uri!r}")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    token = token if token is not None else os.environ.get("MILVUS_TOKEN", "")
    return MilvusClient(uri=uri, token=token)


FULL_TEXT_SINCE = (2, 5)
"""The Milvus version whose collections can hold a BM25 function (full-text search)."""


def server_version(client: MilvusClient) -> tuple[int, ...] | None:
    """The server's version as numbers (``v2.3.5-lite`` -> (2, 3, 5)); None when it does not say one."""
    found = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", str(client.get_server_version()).strip())
    return tuple(int(part) for part in found.groups() if part is not None) if found else None


def supports_full_text(client: MilvusClient) -> bool:
    """Whether the server can store texts with a BM25 function (Milvus 2.5+; Milvus Lite 2.5+ too)."""
    version = server_version(client)
    return version is None or version >= FULL_TEXT_SINCE


class MilvusItemIndex:
    """Item ids plus a Milvus collection of their embeddings; ``search`` returns ids like :class:`ItemIndex`."""

    def __init__(self, client: MilvusClient, item_ids: Sequence[str], meta: MilvusIndexMeta) -> None:
        if len(item_ids) != meta.size:
            raise ValueError(f"the collection holds {meta.size} items but {len(item_ids)} ids were given")
        self.client = client
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.meta = meta
        self._known = frozenset(self.item_ids.tolist())

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        item_ids: Sequence[str],
        space: str,
        uri: str | Path,
        collection: str = DEFAULT_COLLECTION,
        index_type: str = "HNSW",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        token: str | None = None,
        batch_size: int = 1_000,
        progress: bool = True,
        texts: Sequence[str] | None = None,
    ) -> MilvusItemIndex:
        """Insert every item into a new collection, index and load it, then point the alias ``collection`` at it.

        ``index_params``/``search_params`` default to :func:`milvus_params`. ``texts`` (aligned with the ids)
        adds Milvus's full-text search: the texts, analysed, and their BM25 sparse vectors. The previous build
        behind the alias is dropped once the alias has moved; a half-built collection from a crash is dropped
        next time.
        """
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, dim = embeddings.shape
        ids = [str(i) for i in item_ids]
        if len(ids) != n:
            raise ValueError(f"{n} embeddings but {len(ids)} ids were given")
        if len(set(ids)) != n:
            raise ValueError("item ids must be unique: they are the collection's primary key")
        if texts is not None and len(texts) != n:
            raise ValueError(f"{n} embeddings but {len(texts)} texts were given")
        if not _NAME.match(collection):
            raise ValueError(f"collection name {collection!r}: use letters, digits and underscores")
        index_type = index_type.upper()
        if is_lite_uri(uri) and index_type not in LITE_INDEX_TYPES:
            raise ValueError(f"Milvus Lite cannot build {index_type}: use one of {', '.join(LITE_INDEX_TYPES)}")
        default_build, default_search = milvus_params(index_type)
        index_params = default_build if index_params is None else index_params
        search_params = default_search if search_params is None else search_params

        client = connect(uri, token)
        if texts is not None and not supports_full_text(client):
            logger.warning(
                "Milvus %s at %s has no BM25 full-text search (Milvus 2.5 and newer): building without the item "
                "texts; hybrid search uses the catalog's bm25s index instead",
                client.get_server_version(),
                uri,
            )
            texts = None
        start = time.perf_counter()
        _drop_unfinished_builds(client, collection)
        physical = f"{collection}__v{time.strftime('%Y%m%d%H%M%S')}_{uuid.uuid4().hex[:8]}"
        schema = MilvusClient.create_schema(
            auto_id=False, enable_dynamic_field=False, description=f"harness-lm item index, space {space}"
        )
        id_bytes = max((len(i.encode("utf-8")) for i in ids), default=1)
        schema.add_field("item_id", DataType.VARCHAR, is_primary=True, max_length=min(65_535, max(64, 2 * id_bytes)))
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        params = client.prepare_index_params()
        params.add_index(field_name="embedding", index_type=index_type, metric_type="IP", params=index_params)
        if texts is not None:
            text_bytes = max((len(t.encode("utf-8")) for t in texts), default=1)
            schema.add_field(
                "text", DataType.VARCHAR, max_length=min(65_535, max(256, text_bytes)), enable_analyzer=True
            )
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=["sparse"],
                )
            )
            params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection(physical, schema=schema, index_params=params, consistency_level="Strong")
        try:
            _insert(client, physical, ids, embeddings, batch_size, progress, texts)
            client.flush(physical)
            _wait_for_indexes(client, physical, n)
            # created loaded (MilvusClient loads a collection made with its index), the collection serves growing
            # segments through an interim index and picks up the built one later: loading it again now serves
            # the built index from the first search
            client.release_collection(physical)
            client.load_collection(physical)
            client.alter_collection_properties(physical, properties={SPACE_PROPERTY: space})
            _point_alias(client, collection, physical)
        except BaseException:
            client.drop_collection(physical)
            raise
        meta = MilvusIndexMeta(
            kind="milvus",
            dim=dim,
            size=n,
            space=space,
            build_seconds=time.perf_counter() - start,
            uri=str(Path(uri).resolve()) if is_lite_uri(uri) else str(uri),
            collection=collection,
            physical_collection=physical,
            index_type=index_type,
            index_params=dict(index_params),
            search_params=dict(search_params),
            full_text=texts is not None,
        )
        return cls(client, ids, meta)

    def full_text(self) -> MilvusFullText:
        """Milvus's BM25 full-text search over this collection's item texts (built with ``texts=``)."""
        if not self.meta.full_text:
            raise ValueError("this Milvus collection was built without the item texts: it has no full-text search")
        return MilvusFullText(self)

    def _filter(self, allowed_rows: np.ndarray | None) -> str | None:
        """The ``item_id in [...]`` expression for ``allowed_rows`` (positions in :attr:`item_ids`; "" for none,
        None when nothing is allowed). By id, not by a stored row number: a live update moves rows."""
        if allowed_rows is None:
            return ""
        rows = np.unique(np.asarray(allowed_rows, dtype=np.int64))
        if not len(rows):
            return None
        return f"item_id in [{','.join(_quoted(i) for i in self.item_ids[rows].tolist())}]"

    def search(
        self, queries: np.ndarray, k: int, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` item ids and scores (inner products) for each query embedding, like ``ItemIndex.search``.

        ``allowed_rows`` (row positions, as for FAISS) becomes a ``row in [...]`` filter that Milvus applies
        during the search. Missing results (fewer matches than ``k``) are left out of the ids and get FAISS's
        missing score in ``scores``, which always has ``k`` columns.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.meta.dim:
            raise IndexMismatchError(f"query embeddings have {queries.shape[1]} dimensions, the index {self.meta.dim}")
        k = min(k, self.meta.size, MAX_TOP_K)
        scores = np.full((len(queries), k), MISSING_SCORE, dtype=np.float32)
        expression = self._filter(allowed_rows)
        if expression is None:
            return [[] for _ in range(len(queries))], scores
        params = dict(self.meta.search_params)
        if "ef" in params:
            params["ef"] = max(int(params["ef"]), k)  # HNSW needs ef >= limit
        ids: list[list[str]] = []
        for begin in range(0, len(queries), MAX_QUERIES_PER_CALL):
            chunk = queries[begin : begin + MAX_QUERIES_PER_CALL]
            results = self.client.search(
                self.meta.physical_collection,
                data=chunk.tolist(),
                limit=k,
                filter=expression,
                anns_field="embedding",
                output_fields=[],
                search_params={"metric_type": "IP", "params": params},
                consistency_level=SEARCH_CONSISTENCY,
            )
            for offset, hits in enumerate(results):
                # an item another process added since this searcher opened is not in its table: left out
                found = [(_hit_id(hit), hit["distance"]) for hit in hits]
                kept = [(item, score) for item, score in found if item in self._known]
                ids.append([item for item, _ in kept])
                scores[begin + offset, : len(kept)] = [score for _, score in kept]
        return ids, scores

    def update_live(
        self,
        upserted_ids: Sequence[str],
        upserted_vectors: np.ndarray,
        deleted_ids: Sequence[str],
        item_ids: Sequence[str],
        texts: Sequence[str] | None = None,
        batch_size: int = 1_000,
    ) -> MilvusItemIndex:
        """This collection after a catalog change, made in place with Milvus upsert and delete: the rows of
        ``upserted_ids`` (new items and items whose text changed) written with ``upserted_vectors`` (and, for a
        full-text collection, ``texts`` aligned with them), ``deleted_ids`` removed, and ``item_ids`` the
        catalog's order afterwards. The kept items are not sent again and the alias does not move.

        Both calls are idempotent: the same change applied twice gives the same collection, which is how a change
        cut off halfway is completed (the run's journal, :data:`PENDING_UPDATE`, says one was).
        """
        upserted_vectors = np.ascontiguousarray(np.reshape(upserted_vectors, (-1, self.meta.dim)), dtype=np.float32)
        ids = [str(i) for i in upserted_ids]
        if len(ids) != len(upserted_vectors):
            raise ValueError(f"{len(upserted_vectors)} vectors but {len(ids)} ids to upsert")
        if self.meta.full_text and (texts is None or len(texts) != len(ids)):
            raise ValueError("a full-text collection needs the text of every upserted item")
        item_ids = [str(i) for i in item_ids]
        if stray := sorted(set(ids) - set(item_ids))[:3]:
            raise ValueError(f"upserted item(s) not in the new catalog: {', '.join(stray)}")
        collection = self.meta.physical_collection
        has_row = "row" in {f["name"] for f in self.client.describe_collection(collection).get("fields", [])}
        position = {item: row for row, item in enumerate(item_ids)} if has_row else {}
        for begin in range(0, len(ids), batch_size):
            end = min(begin + batch_size, len(ids))
            rows = []
            for i in range(begin, end):
                row: dict[str, Any] = {"item_id": ids[i], "embedding": upserted_vectors[i].tolist()}
                if has_row:  # a collection from before filters went by id keeps its (no longer read) row field
                    row["row"] = position[ids[i]]
                if self.meta.full_text:
                    row["text"] = texts[i]  # type: ignore[index]
                rows.append(row)
            self.client.upsert(collection, rows)
        deleted = [str(i) for i in deleted_ids]
        for begin in range(0, len(deleted), batch_size):
            self.client.delete(collection, ids=deleted[begin : begin + batch_size])
        self.client.flush(collection)
        meta = replace(self.meta, size=len(item_ids))
        return MilvusItemIndex(self.client, item_ids, meta)

    def count(self) -> int:
        """The rows the collection holds now, deletions counted (its statistics count a deleted row until
        compaction)."""
        found = self.client.query(
            self.meta.physical_collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(found[0]["count(*)"])

    def check_space(self, space: str) -> None:
        check_space(space, self.meta.space, backend="Milvus index")

    def save(self, directory: Path) -> None:
        """Write ``ids.json`` then ``meta.json`` (each atomically) into ``directory``; the vectors live in Milvus.

        A Lite uri inside ``directory`` is stored relative to it, so the run folder can move. A FAISS
        ``index.faiss`` left from an earlier build is removed.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        uri = self.meta.uri
        if is_lite_uri(uri):
            path = Path(uri).resolve()
            if path.is_relative_to(directory.resolve()):
                uri = str(path.relative_to(directory.resolve()))
        write_text(directory / "ids.json", json.dumps(list(self.item_ids)))
        write_text(directory / "meta.json", json.dumps(asdict(self.meta) | {"uri": uri}, indent=2))
        (directory / "index.faiss").unlink(missing_ok=True)

    @classmethod
    def load(
        cls, directory: Path, token: str | None = None, pending_ids: Sequence[str] | None = None
    ) -> MilvusItemIndex:
        """Reconnect to the collection a :meth:`save` describes and check it is still the one that was built.

        A live update cut off halfway (its journal in ``directory``) is refused with how to complete it.
        ``pending_ids`` opens the collection anyway, as holding those items (the update step completing a change:
        the catalog's ids before it, whichever of ``ids.json`` and ``meta.json`` the cut-off change had written).
        """
        directory = Path(directory)
        journal = directory / PENDING_UPDATE
        pending = pending_ids is not None
        if journal.exists() and not pending:
            raise IndexMismatchError(
                f"{journal}: an update of this Milvus collection was cut off and the collection may hold part of "
                f"it ({journal.read_text(encoding='utf-8').strip()}): run the same `harness index --update` again"
            )
        raw = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        if is_lite_uri(raw["uri"]) and not Path(raw["uri"]).is_absolute():
            raw["uri"] = str(directory / raw["uri"])
        meta = MilvusIndexMeta(**raw)
        ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))
        if pending_ids is not None:
            ids, meta = list(pending_ids), replace(meta, size=len(pending_ids))
        client = connect(meta.uri, token)
        if not client.has_collection(meta.physical_collection):
            raise FileNotFoundError(
                f"Milvus collection {meta.physical_collection!r} is not at {meta.uri} (dropped or rebuilt "
                "elsewhere): run `harness index --kind milvus` again"
            )
        client.load_collection(meta.physical_collection)
        stored = client.describe_collection(meta.physical_collection).get("properties", {}).get(SPACE_PROPERTY)
        if stored is not None and stored != meta.space:
            raise IndexMismatchError(
                f"Milvus collection {meta.physical_collection!r} holds space {stored}, meta.json says {meta.space}"
            )
        index = cls(client, ids, meta)
        if not pending and (rows := index.count()) != len(ids):
            raise IndexMismatchError(f"Milvus collection has {rows} rows but ids.json lists {len(ids)} items")
        return index

    def close(self) -> None:
        self.client.close()


class MilvusFullText:
    """The lexical side of a hybrid search, answered by Milvus's BM25 over the collection's item texts.

    The same interface as ``harnesslm.index.bm25.BM25Retriever`` (``ids``, ``rows_of``, ``search``), so a
    ``HybridSearcher`` fuses it with the dense side in the same way.
    """

    def __init__(self, index: MilvusItemIndex) -> None:
        self.index = index
        self.ids = list(index.item_ids)
        self._row_of = {item: row for row, item in enumerate(self.ids)}

    def rows_of(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self._row_of[item] for item in item_ids), dtype=np.int64, count=len(item_ids))

    def search(
        self, queries: Sequence[str], k: int, allowed_rows: np.ndarray | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top-``k`` (item id, BM25 score) per query, best first; a query with no indexed term gets none."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        expression = self.index._filter(allowed_rows)
        if expression is None:
            return [[] for _ in queries]
        out: list[list[tuple[str, float]]] = []
        queries = list(queries)
        for begin in range(0, len(queries), MAX_QUERIES_PER_CALL):
            results = self.index.client.search(
                self.index.meta.physical_collection,
                data=queries[begin : begin + MAX_QUERIES_PER_CALL],
                limit=min(k, MAX_TOP_K),
                filter=expression,
                anns_field="sparse",
                output_fields=[],
                search_params={"metric_type": "BM25"},
                consistency_level=SEARCH_CONSISTENCY,
            )
            # Milvus Lite reports BM25 distances negated; the order is best first either way
            out += [[(_hit_id(hit), abs(float(hit["distance"]))) for hit in hits] for hits in results]
        return out


def _insert(
    client: MilvusClient,
    collection: str,
    ids: list[str],
    embeddings: np.ndarray,
    batch_size: int,
    progress: bool,
    texts: Sequence[str] | None = None,
) -> None:
    """Insert rows in batches (a gRPC message has a size limit), with a progress bar."""
    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"inserting into Milvus {collection}", total=len(ids))
        for begin in range(0, len(ids), batch_size):
            end = min(begin + batch_size, len(ids))
            rows = [
                {"item_id": ids[i], "embedding": vector, **({"text": texts[i]} if texts is not None else {})}
                for i, vector in zip(range(begin, end), embeddings[begin:end].tolist(), strict=True)
            ]
            client.insert(collection, rows)
            bar.advance(task, end - begin)


def _wait_for_indexes(client: MilvusClient, collection: str, rows: int, timeout: float = 6 * 3600) -> None:
    """Wait until every index of ``collection`` covers all ``rows``: a server builds them in the background after
    a flush, and until then searches the unindexed segments through a coarse interim index (on the 2.3.5 server
    here, over the Home Depot catalog, searches right after a build found visibly fewer of the exact top 100
    than the same searches a minute later). Milvus Lite, which reports no row counts, is not waited for."""
    deadline = time.monotonic() + timeout
    for name in client.list_indexes(collection):
        while True:
            info = client.describe_index(collection, name) or {}
            if str(info.get("state", "")).lower() == "failed":
                raise RuntimeError(
                    f"Milvus failed to build index {name!r} of {collection}: {info.get('index_state_fail_reason')}"
                )
            indexed, pending = info.get("indexed_rows"), info.get("pending_index_rows", 0)
            finished = str(info.get("state", "")).lower() == "finished" and not pending
            # a segment under the server's minimum size is never indexed (searched as is): done when none waits
            if indexed is None or int(indexed) >= rows or finished:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Milvus index {name!r} of {collection}: {indexed} of {rows} rows after {timeout:.0f} s"
                )
            time.sleep(0.5)


def _point_alias(client: MilvusClient, alias: str, physical: str) -> None:
    """Move (or create) ``alias`` to ``physical`` and drop the collection it pointed at before."""
    previous = _alias_target(client, alias)
    if previous is None and client.has_collection(alias):
        raise ValueError(
            f"a Milvus collection named {alias!r} exists and is not an alias made by harness-lm: drop it or "
            "choose another collection name"
        )
    if previous is None:
        client.create_alias(physical, alias)
        return
    client.alter_alias(physical, alias)
    if previous != physical:
        client.drop_collection(previous)


def _alias_target(client: MilvusClient, alias: str) -> str | None:
    """The collection ``alias`` points at, or None (asked via the list: describing a missing alias logs an error)."""
    if alias not in client.list_aliases().get("aliases", []):
        return None
    return client.describe_alias(alias).get("collection_name")


def _drop_unfinished_builds(client: MilvusClient, collection: str) -> None:
    """Drop ``<collection>__v*`` collections no alias points at: leftovers of builds that crashed."""
    live = _alias_target(client, collection)
    for name in client.list_collections():
        if name.startswith(f"{collection}__v") and name != live:
            logger.info("dropping unfinished Milvus build %s", name)
            client.drop_collection(name)


def _quoted(item_id: str) -> str:
    """A string literal of Milvus's filter expressions (double quotes, backslash escapes)."""
    return '"' + item_id.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hit_id(hit: Any) -> str:
    """The primary key of a search hit (pymilvus 3 names it after the field; 2.x calls it ``id``)."""
    try:
        return str(hit["item_id"])
    except KeyError:
        return str(hit["id"])

"""Item embeddings (encoded once, cached) and the item index the students search (FAISS, or Milvus)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from harnesslm.config import IndexConfig
    from harnesslm.index.item_index import ItemIndex
    from harnesslm.index.milvus_index import MilvusItemIndex


SOURCE_FILES = ("ids.json", "labels.npy", "meta.json", "harness_step.json")


def index_version(directory: Path) -> str:
    """A fingerprint of what a saved index holds now: its ids, node labels, meta and build record (which a
    build or an update rewrites, with its date), so a copy made from it (the serving graph) knows it is stale."""
    import hashlib

    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        path = Path(directory) / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"-"))
    return digest.hexdigest()[:16]


COPY_SOURCE = "source.json"
"""Beside an index made from another (the service's HNSW graph over the run's exact index): the
:func:`index_version` of the index it was made from, or last updated to."""


def mark_copy(directory: Path, version: str) -> None:
    from harnesslm.atomic import write_text

    write_text(Path(directory) / COPY_SOURCE, json.dumps({"index_version": version}))


def copied_from(directory: Path) -> str | None:
    """The :func:`index_version` a copy was made from (None: unknown, e.g. made before versions were kept)."""
    path = Path(directory) / COPY_SOURCE
    return json.loads(path.read_text(encoding="utf-8")).get("index_version") if path.exists() else None


def load_item_index(directory: Path, token: str | None = None) -> ItemIndex | MilvusItemIndex:
    """Open the index a run's ``index/`` folder describes: FAISS, or a Milvus collection (``kind: milvus``).

    ``token`` is only used for a Milvus server (default: ``$MILVUS_TOKEN``); pymilvus is imported only then.
    """
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    if meta.get("kind") == "milvus":
        from harnesslm.index.milvus_index import MilvusItemIndex

        return MilvusItemIndex.load(directory, token=token)
    from harnesslm.index.item_index import ItemIndex

    return ItemIndex.load(directory)


def build_item_index(
    embeddings: np.ndarray,
    item_ids: Sequence[str],
    space: str,
    config: IndexConfig,
    directory: Path,
    progress: bool = True,
    texts: Sequence[str] | None = None,
) -> ItemIndex | MilvusItemIndex:
    """Build the index ``config`` asks for (a FAISS kind or Milvus) and save it, or its description, in
    ``directory``. A Milvus Lite index without ``milvus.uri`` lives in ``directory/milvus.db``; with ``texts``
    and ``config.milvus.full_text`` it also gets Milvus's BM25 full-text search over them."""
    from harnesslm.index.item_index import ItemIndex, default_nlist

    if config.kind == "milvus":
        from harnesslm.index.milvus_index import MilvusItemIndex, milvus_params

        if config.dim is not None:
            raise ValueError("index.dim (Matryoshka) applies to the FAISS kinds; Milvus keeps the full embeddings")

        index_params, search_params = milvus_params(
            config.milvus.index_type,
            config.hnsw_m,
            config.hnsw_ef_construction,
            config.hnsw_ef_search,
            config.ivf_nlist or default_nlist(len(item_ids)),
            config.ivf_nprobe,
        )
        built: ItemIndex | MilvusItemIndex = MilvusItemIndex.build(
            embeddings,
            item_ids,
            space,
            uri=config.milvus.uri or Path(directory) / "milvus.db",
            collection=config.milvus.collection,
            index_type=config.milvus.index_type,
            index_params=index_params,
            search_params=search_params,
            token=config.milvus.token,
            progress=progress,
            texts=texts if config.milvus.full_text else None,
        )
    else:
        built = ItemIndex.build(
            embeddings,
            item_ids,
            space=space,
            kind=config.kind,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construction=config.hnsw_ef_construction,
            hnsw_ef_search=config.hnsw_ef_search,
            ivf_nlist=config.ivf_nlist,
            ivf_nprobe=config.ivf_nprobe,
            pq_m=config.pq_m,
            dim=config.dim,
        )
    built.save(directory)
    return built

"""The Milvus backend against a real Milvus standalone server on 127.0.0.1, through pymilvus's network client:
build, search and filters as FAISS answers them, the alias swap, what a 2.3 server lacks, a run indexed there."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harnesslm.index.item_index import ItemIndex, recall_against_exact

pytest.importorskip("pymilvus", reason="the Milvus backend needs pymilvus (pip install 'harness-lm[milvus]')")

N, DIM = 600, 16
RNG = np.random.default_rng(5)
VECTORS = RNG.normal(size=(N, DIM)).astype(np.float32)
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)
QUERIES = VECTORS[:16] + 0.2 * RNG.normal(size=(16, DIM)).astype(np.float32)
IDS = [f"sku-{i:04d}" for i in range(N)]


@pytest.fixture(scope="module")
def exact() -> ItemIndex:
    return ItemIndex.build(VECTORS, IDS, space="teacher-fp")


def build(uri: str, collection: str, index_type: str = "FLAT", **kwargs):
    from harnesslm.index.milvus_index import MilvusItemIndex

    return MilvusItemIndex.build(
        VECTORS, IDS, "teacher-fp", uri=uri, collection=collection, index_type=index_type, progress=False, **kwargs
    )


def test_the_server_answers_as_faiss_does_with_and_without_filters(milvus_server: str, exact: ItemIndex) -> None:
    from harnesslm.index.milvus_index import connect, server_version

    assert server_version(connect(milvus_server)) >= (2, 3)
    flat = build(milvus_server, "server_flat", batch_size=250)
    ids, scores = flat.search(QUERIES, k=10)
    exact_ids, exact_scores = exact.search(QUERIES, k=10)
    assert ids == exact_ids
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    allowed = np.arange(0, N, 7)
    assert flat.search(QUERIES, k=10, allowed_rows=allowed)[0] == exact.search(QUERIES, k=10, allowed_rows=allowed)[0]
    graph = build(milvus_server, "server_hnsw", "HNSW")
    assert recall_against_exact(graph.search(QUERIES, k=10)[0], exact_ids, 10) >= 0.9


def test_a_server_builds_ivf_pq_which_milvus_lite_refuses(milvus_server: str, exact: ItemIndex) -> None:
    ivfpq = build(milvus_server, "server_ivfpq", "IVF_PQ", index_params={"nlist": 16, "m": 4, "nbits": 8})
    ivfpq_ids, _ = ivfpq.search(QUERIES, k=10)
    assert all(len(row) == 10 for row in ivfpq_ids)
    assert recall_against_exact(ivfpq_ids, exact.search(QUERIES, k=10)[0], 10) > 0.3  # 4-byte codes of 16 dims


def test_a_rebuild_moves_the_alias_other_clients_search(milvus_server: str, tmp_path: Path) -> None:
    from pymilvus import MilvusClient

    from harnesslm.index import load_item_index

    first = build(milvus_server, "server_alias")
    first.save(tmp_path / "index")
    assert load_item_index(tmp_path / "index").search(QUERIES[:2], k=3)[0] == first.search(QUERIES[:2], k=3)[0]
    second = build(milvus_server, "server_alias")
    other = MilvusClient(uri=milvus_server)  # another service, knowing only the alias
    assert other.describe_alias("server_alias")["collection_name"] == second.meta.physical_collection
    assert first.meta.physical_collection not in other.list_collections()
    hits = other.search("server_alias", data=QUERIES[:1].tolist(), limit=1, anns_field="embedding")
    assert hits[0][0]["id"] == second.search(QUERIES[:1], k=1)[0][0][0]
    with pytest.raises(FileNotFoundError, match="harness index"):
        load_item_index(tmp_path / "index")  # describes the dropped build


def test_full_text_is_left_out_on_a_server_before_2_5(milvus_server: str, caplog: pytest.LogCaptureFixture) -> None:
    from harnesslm.index.milvus_index import FULL_TEXT_SINCE, connect, server_version

    if server_version(connect(milvus_server)) >= FULL_TEXT_SINCE:
        pytest.skip("this server has BM25 full-text search")
    with caplog.at_level(logging.WARNING, logger="harnesslm.index.milvus_index"):
        built = build(milvus_server, "server_text", texts=[f"item {i}" for i in range(N)])
    assert not built.meta.full_text and "no BM25 full-text search" in caplog.text
    with pytest.raises(ValueError, match="without the item texts"):
        built.full_text()


def test_a_run_indexes_into_the_server_and_follows_a_catalog_change(
    milvus_server: str, demo_files, tiny_teacher, tmp_path: Path
) -> None:
    from harnesslm.config import RunConfig
    from harnesslm.index.bm25 import BM25Retriever
    from harnesslm.index.milvus_index import MilvusItemIndex
    from harnesslm.pipeline import steps
    from harnesslm.pipeline.index import update_index
    from harnesslm.pipeline.serve import lexical_index
    from harnesslm.run.run_dir import RunDir

    config = RunConfig.model_validate(
        {
            "data": {"catalog": {"path": demo_files["catalog"]}, "judgments": {"path": demo_files["judgments"]}},
            "teacher": {"model": str(tiny_teacher), "enabled": False},
            "index": {"kind": "milvus", "milvus": {"uri": milvus_server, "collection": "server_run"}},
            "students": [],
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    run = steps.prepare(config, tmp_path / "run")
    steps.teacher(run, progress=False)
    steps.build_index(run, progress=False)
    index = RunDir(run.root).index
    assert isinstance(index, MilvusItemIndex) and index.meta.uri == milvus_server
    assert index.meta.size == len(run.catalog)
    assert isinstance(lexical_index(RunDir(run.root)), BM25Retriever), "bm25s: a 2.3 server has no BM25"

    gone = run.catalog["item_id"].iloc[3]
    (tmp_path / "gone.txt").write_text(f"{gone}\n", encoding="utf-8")
    cfg = run.config.data.catalog
    pd.DataFrame({cfg.id_column: ["new-1"], cfg.text_column: ["brand new drill"]}).to_csv(
        tmp_path / "delta.csv", index=False
    )
    update_index(RunDir(run.root), tmp_path / "delta.csv", tmp_path / "gone.txt", progress=False)
    after = RunDir(run.root).index
    assert after.meta.physical_collection == index.meta.physical_collection, "upserted and deleted live"
    assert "new-1" in after.item_ids and gone not in after.item_ids and after.meta.size == len(run.catalog)
    assert after.count() == after.meta.size, "the server counts the deletion"
    stale_ids, _ = index.search(np.ones((1, index.meta.dim), dtype=np.float32), k=index.meta.size)
    assert "new-1" not in stale_ids[0], "a searcher opened before the change returns no item it does not know"

"""The Milvus backend against Milvus Lite in a temporary folder: same answers as FAISS, filters, spaces, reopen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harnesslm.index.item_index import IndexMismatchError, ItemIndex, recall_against_exact

pytest.importorskip("pymilvus", reason="the Milvus backend needs pymilvus (pip install 'harness-lm[milvus]')")

N, DIM = 400, 16
RNG = np.random.default_rng(11)
VECTORS = RNG.normal(size=(N, DIM)).astype(np.float32)
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)
QUERIES = VECTORS[:12] + 0.2 * RNG.normal(size=(12, DIM)).astype(np.float32)
IDS = [f"sku-{i:04d}" for i in range(N)]


@pytest.fixture(scope="module")
def lite_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for Milvus Lite databases; skips the module only when Milvus Lite itself cannot start here.

    The probe uses pymilvus's own client, not ours: a bug in :func:`connect` fails the tests below instead of
    passing for a missing engine.
    """
    from pymilvus import MilvusClient

    from harnesslm.index.milvus_index import connect

    root = tmp_path_factory.mktemp("milvus")
    try:
        probe = MilvusClient(uri=str(root / "probe.db"))
        probe.list_collections()
        probe.close()
    except Exception as error:  # the embedded engine (milvus-lite) did not start: no Milvus Lite here
        pytest.skip(f"Milvus Lite cannot start here: {type(error).__name__}: {error}")
    client = connect(root / "ours.db")  # our own connection must work wherever the engine does
    client.list_collections()
    client.close()
    return root


@pytest.fixture(scope="module")
def exact() -> ItemIndex:
    return ItemIndex.build(VECTORS, IDS, space="teacher-fp")


@pytest.fixture(scope="module")
def flat(lite_root: Path):
    from harnesslm.index.milvus_index import MilvusItemIndex

    return MilvusItemIndex.build(
        VECTORS, IDS, "teacher-fp", uri=lite_root / "flat.db", index_type="FLAT", batch_size=150, progress=False
    )


def test_flat_search_equals_faiss_exact(flat, exact: ItemIndex) -> None:
    assert flat.meta.kind == "milvus" and flat.meta.size == N and flat.meta.dim == DIM
    assert list(flat.item_ids) == IDS
    ids, scores = flat.search(QUERIES, k=10)
    exact_ids, exact_scores = exact.search(QUERIES, k=10)
    assert ids == exact_ids
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    one_ids, one_scores = flat.search(QUERIES[0], k=3)  # a single 1-d query is one row
    assert one_ids == [exact_ids[0][:3]] and one_scores.shape == (1, 3)
    with pytest.raises(IndexMismatchError, match="dimensions"):
        flat.search(np.ones((1, DIM + 1), dtype=np.float32), k=3)


def test_filters(flat, exact: ItemIndex) -> None:
    allowed = np.arange(0, N, 5)
    ids, _ = flat.search(QUERIES, k=10, allowed_rows=allowed)
    exact_ids, _ = exact.search(QUERIES, k=10, allowed_rows=allowed)
    assert ids == exact_ids
    assert all(set(row) <= {IDS[r] for r in allowed} for row in ids)
    # fewer allowed items than k: only those, the missing tail scored like FAISS does
    few, few_scores = flat.search(QUERIES[:2], k=5, allowed_rows=np.array([7, 3, 3]))
    assert [sorted(row) for row in few] == [["sku-0003", "sku-0007"]] * 2
    assert few_scores.shape == (2, 5) and np.all(few_scores[:, 2:] < -1e30)
    none, none_scores = flat.search(QUERIES[:2], k=5, allowed_rows=np.array([], dtype=np.int64))
    assert none == [[], []] and none_scores.shape == (2, 5)


def test_space_check(flat) -> None:
    flat.check_space("teacher-fp")
    with pytest.raises(IndexMismatchError, match="other-fp"):
        flat.check_space("other-fp")


def test_save_reopen_and_rebuild(lite_root: Path, exact: ItemIndex) -> None:
    from harnesslm.index import load_item_index
    from harnesslm.index.milvus_index import SPACE_PROPERTY, MilvusItemIndex

    folder = lite_root / "run" / "index"
    built = MilvusItemIndex.build(
        VECTORS, IDS, "teacher-fp", uri=folder / "milvus.db", index_type="FLAT", progress=False
    )
    built.save(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == "milvus" and meta["uri"] == "milvus.db"  # relative: the run folder can move
    assert "token" not in json.dumps(meta)
    assert json.loads((folder / "ids.json").read_text()) == IDS

    reopened = load_item_index(folder)
    assert isinstance(reopened, MilvusItemIndex)
    assert reopened.meta == built.meta
    assert reopened.search(QUERIES, k=10)[0] == exact.search(QUERIES, k=10)[0]

    # someone rebuilds the collection in another space behind the run's back: loading refuses
    reopened.client.alter_collection_properties(built.meta.physical_collection, properties={SPACE_PROPERTY: "x"})
    with pytest.raises(IndexMismatchError, match="space"):
        load_item_index(folder)

    # a rebuild moves the alias to a new collection and drops the old one; the old description is stale
    rebuilt = MilvusItemIndex.build(
        VECTORS, IDS, "teacher-2", uri=folder / "milvus.db", index_type="FLAT", progress=False
    )
    client = rebuilt.client
    assert client.describe_alias("harness_items")["collection_name"] == rebuilt.meta.physical_collection
    assert built.meta.physical_collection not in client.list_collections()
    with pytest.raises(FileNotFoundError, match="harness index"):
        load_item_index(folder)
    rebuilt.save(folder)
    assert load_item_index(folder).meta.space == "teacher-2"


def test_hnsw_index_and_lite_limits(lite_root: Path, exact: ItemIndex) -> None:
    from harnesslm.index.milvus_index import MilvusItemIndex

    hnsw = MilvusItemIndex.build(
        VECTORS,
        IDS,
        "teacher-fp",
        uri=lite_root / "hnsw.db",
        collection="hnsw_items",
        index_type="hnsw",
        progress=False,
    )
    assert hnsw.meta.index_type == "HNSW" and hnsw.meta.search_params == {"ef": 128}
    ids, _ = hnsw.search(QUERIES, k=20)
    assert recall_against_exact(ids, exact.search(QUERIES, k=20)[0], 20) >= 0.9
    with pytest.raises(ValueError, match="Lite"):
        MilvusItemIndex.build(VECTORS, IDS, "fp", uri=lite_root / "pq.db", index_type="IVF_PQ", progress=False)
    with pytest.raises(ValueError, match=r"\.db"):
        MilvusItemIndex.build(VECTORS, IDS, "fp", uri=lite_root / "no-suffix", index_type="FLAT", progress=False)
    with pytest.raises(ValueError, match="unique"):
        MilvusItemIndex.build(VECTORS[:2], ["a", "a"], "fp", uri=lite_root / "dup.db", progress=False)


def test_run_dir_opens_a_milvus_index(lite_root: Path, exact: ItemIndex) -> None:
    from harnesslm.config import IndexConfig, RunConfig
    from harnesslm.index import build_item_index
    from harnesslm.index.milvus_index import MilvusItemIndex
    from harnesslm.run.run_dir import RunDir

    config = RunConfig.model_validate(
        {
            "data": {"catalog": {"path": "items.csv"}, "judgments": {"path": "judged.csv"}},
            "index": {"kind": "milvus", "milvus_index_type": "FLAT"},
        }
    )
    run = RunDir(lite_root / "a-run", config)
    assert isinstance(config.index, IndexConfig)
    build_item_index(VECTORS, IDS, "teacher-fp", config.index, run.index_dir, progress=False)
    assert (run.index_dir / "milvus.db").is_dir()  # Milvus Lite's default home: inside the run's index folder
    assert isinstance(run.index, MilvusItemIndex)
    assert run.index.search(QUERIES, k=5)[0] == exact.search(QUERIES, k=5)[0]


def test_full_text_search_is_milvus_bm25_and_fuses_like_bm25s(lite_root: Path) -> None:
    from harnesslm.index.bm25 import BM25Retriever
    from harnesslm.index.milvus_index import MilvusItemIndex
    from harnesslm.serving.searcher import HybridSearcher, Searcher

    words = ["drill", "hammer", "hose", "lamp", "saw", "wrench", "paint", "brush", "ladder", "glue"]
    texts = [f"{words[i % 10]} {words[(i * 7 + 3) % 10]} model {i}" for i in range(N)]
    index = MilvusItemIndex.build(
        VECTORS, IDS, "teacher-fp", uri=lite_root / "text.db", index_type="FLAT", progress=False, texts=texts
    )
    assert index.meta.full_text
    lexical = index.full_text()
    hits = lexical.search(["hammer saw", "zzz"], k=20)
    assert hits[1] == []  # no indexed term
    assert hits[0] and all("hammer" in texts[IDS.index(i)] or "saw" in texts[IDS.index(i)] for i, _ in hits[0])
    assert all(a >= b for (_, a), (_, b) in zip(hits[0], hits[0][1:], strict=False))  # best first
    both = {i for i, _ in hits[0] if "hammer" in texts[IDS.index(i)] and "saw" in texts[IDS.index(i)]}
    assert {i for i, _ in hits[0][: len(both)]} == both  # items with both words outrank those with one
    bm25s_top = {i for i, _ in BM25Retriever.fit(IDS, texts).search(["hammer saw"], k=len(both))[0]}
    assert bm25s_top == both  # the same items first as bm25s
    rows = lexical.rows_of(IDS[:50])
    assert all(IDS.index(i) < 50 for i, _ in lexical.search(["hammer saw"], k=20, allowed_rows=rows)[0])

    class Identity:  # queries are given as vectors' row numbers: the dense side is exact nearest neighbours
        def encode(self, queries: list[str], batch_size: int = 1) -> np.ndarray:
            return np.stack([VECTORS[int(q.split()[-1])] for q in queries])

    hybrid = HybridSearcher(Searcher(Identity(), index), lexical, weight=0.5)
    with pytest.raises(ValueError, match="without the item texts"):
        MilvusItemIndex.build(
            VECTORS, IDS, "x", uri=lite_root / "plain.db", index_type="FLAT", progress=False
        ).full_text()
    found = hybrid.search(["hammer saw 7"], k=10, mode="hybrid")[0][0]
    assert IDS[7] in found and set(found) & both


def test_a_live_update_upserts_and_deletes_in_the_same_collection(lite_root: Path) -> None:
    from harnesslm.index.milvus_index import MilvusItemIndex

    ids = [*IDS[:299], 'odd "quoted" \\ id']  # filters quote ids: a quote or a backslash in one must not break them
    texts = [f"item {i}" for i in range(300)]
    before = MilvusItemIndex.build(
        VECTORS[:300], ids, "fp", uri=lite_root / "live.db", index_type="FLAT", progress=False, texts=texts
    )
    new_ids = [i for i in ids if i != IDS[7]] + ["new-1"]
    vectors = dict(zip(ids, VECTORS[:300], strict=True)) | {IDS[5]: VECTORS[350], "new-1": VECTORS[360]}
    for _ in range(2):  # the same change twice (a rerun completing a cut-off one) gives the same collection
        after = before.update_live(
            [IDS[5], "new-1"], VECTORS[[350, 360]], [IDS[7]], new_ids, texts=["zebra lamp", "zebra drill"]
        )
    assert after.meta.physical_collection == before.meta.physical_collection, "no new collection: live"
    assert after.count() == len(new_ids) == 300 and after.meta.size == 300
    exact = ItemIndex.build(np.stack([vectors[i] for i in new_ids]), new_ids, space="fp")
    queries = np.concatenate([QUERIES, VECTORS[[350, 360]]])
    assert after.search(queries, k=10)[0] == exact.search(queries, k=10)[0]
    allowed = np.array([0, 5, 298, 299, len(new_ids) - 1])  # the quoted id and the new item among them
    assert after.search(queries, k=3, allowed_rows=allowed)[0] == exact.search(queries, k=3, allowed_rows=allowed)[0]
    assert {i for i, _ in after.full_text().search(["zebra"], k=5)[0]} == {IDS[5], "new-1"}, "BM25 follows"
    stale, _ = before.search(VECTORS[[360]], k=5)  # a searcher opened before the change: no unknown item
    assert "new-1" not in stale[0] and IDS[7] not in stale[0] and len(stale[0]) == 4
    with pytest.raises(ValueError, match="not in the new catalog"):
        after.update_live(["ghost"], VECTORS[:1], [], new_ids, texts=["x"])
    with pytest.raises(ValueError, match="text of every"):
        after.update_live(["new-1"], VECTORS[:1], [], new_ids)

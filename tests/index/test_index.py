"""The FAISS item index (exact and HNSW), ANN recall, and the on-disk embedding cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from harnesslm.encoding import cache as embeddings_module
from harnesslm.encoding.cache import cached_encode, encode
from harnesslm.index.item_index import IndexMismatchError, ItemIndex, recall_against_exact
from harnesslm.models.model_loading import load_model

# Four unit vectors in 3-d with known inner products against the query (1, 0, 0):
#   a: 1.0, b: 0.8, c: 0.0, d: -0.6
HAND_IDS = ["a", "b", "c", "d"]
HAND_VECTORS = np.array(
    [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [-0.6, 0.8, 0.0]],
    dtype=np.float32,
)


def _hand_index(space: str = "teacher-fp") -> ItemIndex:
    return ItemIndex.build(HAND_VECTORS, HAND_IDS, space=space)


def _random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ItemIndex -------------------------------------------------------------------------------------------------
def test_exact_search_ids_order_and_scores() -> None:
    index = _hand_index()
    assert index.meta.kind == "exact" and index.meta.dim == 3 and index.meta.size == 4
    queries = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], dtype=np.float32)
    ids, scores = index.search(queries, k=3)
    # second query: a 0.0, b 0.36, c 0.8, d 0.48
    assert ids == [["a", "b", "c"], ["c", "d", "b"]]
    np.testing.assert_allclose(scores, [[1.0, 0.8, 0.0], [0.8, 0.48, 0.36]], atol=1e-6)
    # a single 1-d query is accepted as one row
    one_ids, one_scores = index.search(np.array([0.0, 0.0, 1.0]), k=1)
    assert one_ids == [["c"]]
    np.testing.assert_allclose(one_scores, [[1.0]], atol=1e-6)


def test_k_larger_than_catalog_is_clipped() -> None:
    ids, scores = _hand_index().search(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), k=50)
    assert ids == [["a", "b", "c", "d"]]
    assert scores.shape == (1, 4)
    np.testing.assert_allclose(scores[0], [1.0, 0.8, 0.0, -0.6], atol=1e-6)


def test_dimension_mismatch_raises() -> None:
    with pytest.raises(IndexMismatchError, match="dimensions"):
        _hand_index().search(np.ones((2, 5), dtype=np.float32), k=2)


def test_check_space() -> None:
    index = _hand_index(space="teacher-fp")
    index.check_space("teacher-fp")  # same space: no error
    with pytest.raises(IndexMismatchError, match="other-fp"):
        index.check_space("other-fp")


def test_ids_must_match_vectors() -> None:
    with pytest.raises(ValueError, match="ids"):
        ItemIndex(faiss.IndexFlatIP(3), ["a"], _hand_index().meta)
    with pytest.raises(ValueError, match="kind"):
        ItemIndex.build(HAND_VECTORS, HAND_IDS, space="x", kind="ivf")  # type: ignore[arg-type]


def test_exact_save_load_round_trip(tmp_path: Path) -> None:
    vectors = _random_unit(200, 16, seed=1)
    ids = [f"item-{i}" for i in range(200)]
    index = ItemIndex.build(vectors, ids, space="fp-1")
    queries = _random_unit(20, 16, seed=2)
    expected_ids, expected_scores = index.search(queries, k=10)

    index.save(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["ids.json", "index.faiss", "meta.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary folder left
    loaded = ItemIndex.load(tmp_path / "index")
    assert loaded.meta == index.meta
    got_ids, got_scores = loaded.search(queries, k=10)
    assert got_ids == expected_ids
    np.testing.assert_array_equal(got_scores, expected_scores)
    # brute force agrees with the exact index
    brute = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert got_ids == [[ids[r] for r in row] for row in brute]

    # saving again over the folder replaces it
    ItemIndex.build(vectors[:5], ids[:5], space="fp-2").save(tmp_path / "index")
    again = ItemIndex.load(tmp_path / "index")
    assert again.meta.size == 5 and again.meta.space == "fp-2"


def test_hnsw_recall_and_round_trip(tmp_path: Path) -> None:
    vectors = _random_unit(2000, 32, seed=3)
    ids = [str(100_000 + i) for i in range(2000)]
    queries = _random_unit(100, 32, seed=4)
    exact_ids, _ = ItemIndex.build(vectors, ids, space="fp").search(queries, k=10)

    hnsw = ItemIndex.build(vectors, ids, space="fp", kind="hnsw", hnsw_m=16, hnsw_ef_search=96)
    assert hnsw.meta.kind == "hnsw" and hnsw.meta.hnsw_m == 16 and hnsw.meta.hnsw_ef_search == 96
    assert hnsw.index.hnsw.efSearch == 96
    approx_ids, approx_scores = hnsw.search(queries, k=10)
    recall = recall_against_exact(approx_ids, exact_ids, k=10)
    assert recall >= 0.9
    assert np.all(np.diff(approx_scores, axis=1) <= 1e-6)  # scores are sorted best first

    hnsw.save(tmp_path / "hnsw")
    meta = json.loads((tmp_path / "hnsw" / "meta.json").read_text())
    assert meta["kind"] == "hnsw" and meta["hnsw_ef_search"] == 96
    loaded = ItemIndex.load(tmp_path / "hnsw")
    assert isinstance(loaded.index, faiss.IndexHNSW)
    assert loaded.index.hnsw.efSearch == 96  # not FAISS's default of 16
    loaded_ids, loaded_scores = loaded.search(queries, k=10)
    assert loaded_ids == approx_ids
    np.testing.assert_allclose(loaded_scores, approx_scores, atol=1e-6)


def test_recall_against_exact_hand_made() -> None:
    exact = [["a", "b", "c", "d"], ["x", "y", "z", "w"]]
    approx = [["b", "a", "q", "d"], ["x", "p", "q", "r"]]
    # k=2: {b,a} vs {a,b} -> 1.0; {x,p} vs {x,y} -> 0.5
    assert recall_against_exact(approx, exact, k=2) == pytest.approx(0.75)
    # k=4: 3/4 and 1/4
    assert recall_against_exact(approx, exact, k=4) == pytest.approx(0.5)
    assert recall_against_exact(exact, exact, k=3) == 1.0
    # a short approximate list only counts what it found
    assert recall_against_exact([["a"]], [["a", "b"]], k=2) == pytest.approx(0.5)
    assert np.isnan(recall_against_exact([], [], k=10))


# embedding cache -------------------------------------------------------------------------------------------
TEXTS = ["romex 12 gauge wire", "satin nickel door knob", "weed eater string trimmer", "copper pipe"]


@pytest.fixture
def counted_encode(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls cached_encode makes to the real encoder."""
    calls: list[int] = []
    real = embeddings_module.encode

    def wrapped(model, texts, *args, **kwargs):
        calls.append(len(texts))
        return real(model, texts, *args, **kwargs)

    monkeypatch.setattr(embeddings_module, "encode", wrapped)
    return calls


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cached_encode_hits_and_misses(tiny_teacher: Path, cache_env: Path, counted_encode: list[int]) -> None:
    model = load_model(str(tiny_teacher))
    cache = cache_env / "embeddings"

    first = cached_encode(model, TEXTS, cache, batch_size=2, progress=False)
    assert counted_encode == [4]
    assert first.dtype == np.float32 and first.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, encode(model, TEXTS), atol=1e-6)
    assert len(_files(cache)) == 1 and _files(cache)[0].endswith(".npy")

    # same model (even freshly loaded) and texts: read from disk, the encoder is not called
    second = cached_encode(load_model(str(tiny_teacher)), TEXTS, cache, progress=False)
    assert counted_encode == [4]
    np.testing.assert_array_equal(second, first)

    # other texts, or the same texts in another order: a miss
    cached_encode(model, TEXTS[:3], cache, progress=False)
    cached_encode(model, TEXTS[::-1], cache, progress=False)
    assert counted_encode == [4, 3, 4]

    # a perturbed model: a miss, and different embeddings
    with torch.no_grad():
        weight = model[0].auto_model.embeddings.word_embeddings.weight
        weight.add_(0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    perturbed = cached_encode(model, TEXTS, cache, progress=False)
    assert counted_encode == [4, 3, 4, 4]
    assert not np.allclose(perturbed, first, atol=1e-4)

    files = _files(cache)
    assert len(files) == 4
    assert not [name for name in files if name.endswith(".tmp") or name.startswith(".")]


def test_cached_encode_explicit_fingerprint_and_max_seq_length(
    tiny_teacher: Path, cache_env: Path, counted_encode: list[int]
) -> None:
    model = load_model(str(tiny_teacher))
    cache = cache_env / "embeddings"
    cached_encode(model, TEXTS, cache, progress=False, fingerprint="given-fp")
    assert _files(cache)[0].startswith("given-fp-")
    cached_encode(model, TEXTS, cache, progress=False, fingerprint="given-fp")
    assert counted_encode == [4]
    # a shorter max_seq_length embeds differently: it must not reuse the cache
    model.max_seq_length = 2
    cached_encode(model, TEXTS, cache, progress=False, fingerprint="given-fp")
    assert counted_encode == [4, 4]


def test_cached_encode_ignores_a_cache_of_the_wrong_length(
    tiny_teacher: Path, cache_env: Path, counted_encode: list[int]
) -> None:
    model = load_model(str(tiny_teacher))
    cache = cache_env / "embeddings"
    cached_encode(model, TEXTS, cache, progress=False)
    (path,) = cache.iterdir()
    np.save(path, np.zeros((1, 32), dtype=np.float32))  # a damaged cache file
    again = cached_encode(model, TEXTS, cache, progress=False)
    assert counted_encode == [4, 4]
    assert again.shape == (4, 32)
    assert np.load(path).shape == (4, 32)  # rewritten


def test_index_recall_of_an_index_against_itself_and_a_perturbed_one() -> None:
    from harnesslm.index.item_index import index_recall

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"i{n}" for n in range(300)]
    exact = ItemIndex.build(vectors, ids, space="s")
    assert index_recall(exact, exact, vectors[:10], 5) == 1.0
    shuffled = ItemIndex.build(vectors, ids[::-1], space="s")  # same vectors, wrong ids: top-k ids disagree
    assert index_recall(shuffled, exact, vectors[:10], 5) < 0.5


# compressed kinds, filters, profiling ----------------------------------------------------------------------
def _clustered(n: int, dim: int, seed: int, centers: int = 40, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``centers`` random directions (easy ANN data) and queries drawn the same way."""
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centers, dim))
    middle /= np.linalg.norm(middle, axis=1, keepdims=True)

    def draw(count: int) -> np.ndarray:
        x = middle[rng.integers(0, centers, count)] + spread * rng.normal(size=(count, dim))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(60)


@pytest.fixture(autouse=True)
def _one_faiss_thread() -> Iterator[None]:
    """k-means in FAISS slows down ten-fold when its OpenMP threads fight other processes for 2 cores."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


CLUSTERED, CLUSTERED_QUERIES = _clustered(3000, 32, seed=7)
CLUSTERED_IDS = [f"sku-{i}" for i in range(3000)]
KIND_SETTINGS: dict[str, dict] = {
    "exact": {},
    "hnsw": {"hnsw_m": 16, "hnsw_ef_search": 128},
    "ivfpq": {"ivf_nlist": 32, "ivf_nprobe": 16, "pq_m": 16},
    "sq8": {},
}


@pytest.fixture(scope="module")
def clustered_exact() -> ItemIndex:
    return ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp")


@pytest.mark.parametrize("kind", list(KIND_SETTINGS))
def test_each_kind_builds_searches_filters_and_round_trips(
    kind: str, clustered_exact: ItemIndex, tmp_path: Path
) -> None:
    from harnesslm.index.item_index import index_recall

    built = ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind=kind, **KIND_SETTINGS[kind])  # type: ignore[arg-type]
    assert built.meta.kind == kind and built.meta.size == 3000 and built.meta.dim == 32
    ids, scores = built.search(CLUSTERED_QUERIES, k=20)
    assert [len(row) for row in ids] == [20] * len(CLUSTERED_QUERIES)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    # easy data and enough nprobe / efSearch: the approximate top-100 is nearly the exact one
    assert index_recall(built, clustered_exact, CLUSTERED_QUERIES, 100) >= {"ivfpq": 0.85}.get(kind, 0.95)

    # a filter keeps only allowed rows, and still fills k while enough of them match
    allowed = np.arange(0, 3000, 3)
    allowed_ids = {CLUSTERED_IDS[r] for r in allowed}
    filtered, _ = built.search(CLUSTERED_QUERIES, k=10, allowed_rows=allowed)
    assert all(set(row) <= allowed_ids for row in filtered)
    assert all(len(row) == 10 for row in filtered)
    exact_filtered, _ = clustered_exact.search(CLUSTERED_QUERIES, k=10, allowed_rows=allowed)
    assert recall_against_exact(filtered, exact_filtered, 10) >= 0.8

    built.save(tmp_path / kind)
    loaded = ItemIndex.load(tmp_path / kind)
    assert loaded.meta == built.meta
    loaded_ids, loaded_scores = loaded.search(CLUSTERED_QUERIES, k=20)
    assert loaded_ids == ids
    np.testing.assert_allclose(loaded_scores, scores, atol=1e-6)
    assert loaded.search(CLUSTERED_QUERIES, k=10, allowed_rows=allowed)[0] == filtered


def test_compressed_kinds_are_smaller_than_exact(clustered_exact: ItemIndex) -> None:
    exact_bytes = clustered_exact.memory_bytes
    assert exact_bytes >= 3000 * 32 * 4
    for kind in ("ivfpq", "sq8"):
        compressed = ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind=kind, **KIND_SETTINGS[kind])  # type: ignore[arg-type]
        assert compressed.memory_bytes < 0.5 * exact_bytes, kind
    # hnsw keeps every vector plus its graph
    assert ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind="hnsw").memory_bytes > exact_bytes


def test_ivfpq_nprobe_is_kept_by_filters_tune_and_load(tmp_path: Path, clustered_exact: ItemIndex) -> None:
    ivf = ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind="ivfpq", ivf_nlist=32, ivf_nprobe=1, pq_m=16)
    assert ivf.index.nprobe == 1 and ivf.meta.ivf_nlist == 32 and ivf.meta.pq_m == 16 and ivf.meta.pq_nbits == 8
    few = np.arange(0, 3000, 97)  # 31 rows scattered over many lists
    narrow, _ = ivf.search(CLUSTERED_QUERIES, k=10, allowed_rows=few)
    ivf.tune(nprobe=32)  # every list: a filtered search must then reach every allowed row
    assert ivf.meta.ivf_nprobe == 32 and ivf.index.nprobe == 32
    wide, _ = ivf.search(CLUSTERED_QUERIES, k=10, allowed_rows=few)
    assert all(len(row) == 10 for row in wide)
    assert sum(map(len, narrow)) < sum(map(len, wide))  # nprobe=1 sees only the nearest list's allowed rows
    ivf.save(tmp_path / "ivf")
    assert json.loads((tmp_path / "ivf" / "meta.json").read_text())["ivf_nprobe"] == 32
    loaded = ItemIndex.load(tmp_path / "ivf")
    assert loaded.index.nprobe == 32
    assert loaded.search(CLUSTERED_QUERIES, k=10, allowed_rows=few)[0] == wide
    with pytest.raises(ValueError, match="nprobe"):
        clustered_exact.tune(nprobe=4)


def test_ivfpq_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="divide"):
        ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind="ivfpq", pq_m=5)
    with pytest.raises(ValueError, match="at least"):
        ItemIndex.build(CLUSTERED[:100], CLUSTERED_IDS[:100], space="fp", kind="ivfpq", pq_m=8)


def test_default_ivf_settings() -> None:
    from harnesslm.index.item_index import default_nlist, default_pq_m

    assert default_pq_m(768) == 192 and default_pq_m(32) == 8 and default_pq_m(30) == 6
    assert default_nlist(54_667) == 935 and default_nlist(3000) == 76 and default_nlist(10) == 1
    ivf = ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind="ivfpq")
    assert ivf.meta.ivf_nlist == 76 and ivf.meta.pq_m == 8 and ivf.meta.ivf_nprobe == 32


def test_profile_index(clustered_exact: ItemIndex) -> None:
    from harnesslm.index.profile import profile_index

    sq8 = ItemIndex.build(CLUSTERED, CLUSTERED_IDS, space="fp", kind="sq8")
    profile = profile_index(sq8, clustered_exact, CLUSTERED_QUERIES, k=100, warmup=2, latency_queries=30)
    assert profile.kind == "sq8" and profile.k == 100 and profile.queries == 60 and profile.size == 3000
    assert profile.memory_bytes == len(faiss.serialize_index(sq8.index))
    assert 0 < profile.latency_p50_ms <= profile.latency_p99_ms
    assert 0.95 <= profile.recall <= 1.0
    assert profile.build_seconds == sq8.meta.build_seconds
    assert profile_index(clustered_exact, clustered_exact, CLUSTERED_QUERIES[:5], k=10).recall == 1.0
    assert set(profile.as_dict()) >= {"kind", "memory_bytes", "latency_p50_ms", "latency_p99_ms", "recall"}


def test_build_and_load_item_index_from_config(tmp_path: Path) -> None:
    from harnesslm.config import IndexConfig
    from harnesslm.index import build_item_index, load_item_index

    config = IndexConfig(kind="ivfpq", ivf_nlist=16, ivf_nprobe=8, pq_m=8)
    built = build_item_index(CLUSTERED, CLUSTERED_IDS, "fp", config, tmp_path / "index", progress=False)
    loaded = load_item_index(tmp_path / "index")
    assert isinstance(loaded, ItemIndex)
    assert loaded.meta == built.meta and loaded.meta.ivf_nlist == 16 and loaded.index.nprobe == 8
    with pytest.raises(ValueError):
        IndexConfig(kind="annoy")  # type: ignore[arg-type]


def test_matryoshka_index_keeps_the_leading_dimensions_and_cuts_queries_alike(tmp_path) -> None:
    from harnesslm.index.item_index import matryoshka

    rng = np.random.default_rng(5)
    items = rng.normal(size=(300, 16)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries = items[:10] + 0.1 * rng.normal(size=(10, 16)).astype(np.float32)
    ids = [f"i{n}" for n in range(300)]
    small = ItemIndex.build(items, ids, space="s", dim=8)
    assert small.meta.dim == 8 and small.meta.source_dim == 16
    cut = ItemIndex.build(matryoshka(items, 8), ids, space="s")
    assert small.search(queries, 5)[0] == cut.search(matryoshka(queries, 8), 5)[0]  # full queries are cut
    np.testing.assert_allclose(np.linalg.norm(small.vectors(), axis=1), 1.0, atol=1e-5)
    small.save(tmp_path / "mrl")
    assert ItemIndex.load(tmp_path / "mrl").search(queries, 5)[0] == small.search(queries, 5)[0]
    with pytest.raises(ValueError, match="cannot keep 32"):
        ItemIndex.build(items, ids, space="s", dim=32)


@pytest.mark.parametrize("kind", ["exact", "sq8", "ivfpq"])
def test_an_update_in_place_equals_the_index_built_again(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n, dim = 2_000, 16
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"i{i}" for i in range(n)]
    changed, removed = np.array([5, 100, 1500]), np.array([3, 7, 99, 1999])
    fresh = rng.normal(size=(7, dim)).astype(np.float32)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    index = ItemIndex.build(vectors, ids, "s", kind=kind, ivf_nlist=16, ivf_nprobe=16)
    again = faiss.clone_index(index.index)  # the same training (quantizers), every vector added again
    after_vectors = vectors.copy()
    after_vectors[changed] = fresh[:3]
    kept = np.setdiff1d(np.arange(n), removed)
    after_vectors = np.concatenate([after_vectors[kept], fresh[3:]])
    after_ids = [ids[i] for i in kept] + ["a0", "a1", "a2", "a3"]
    again.reset()
    again.add(after_vectors)
    expected = ItemIndex(again, after_ids, index.meta)

    updated = index.update_in_place(changed, fresh[:3], removed, ["a0", "a1", "a2", "a3"], fresh[3:])
    assert list(updated.item_ids) == after_ids and updated.meta.size == len(after_ids)
    queries = after_vectors[::25]
    found, scores = updated.search(queries, 10)
    expected_found, expected_scores = expected.search(queries, 10)
    assert found == expected_found
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    updated.save(tmp_path / "index")
    assert ItemIndex.load(tmp_path / "index").search(queries, 10)[0] == expected_found


def test_an_hnsw_graph_updated_in_place_leaves_tombstones_and_returns_what_a_rebuild_returns(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n, dim = 1_500, 16
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"i{i}" for i in range(n)]
    fresh = rng.normal(size=(9, dim)).astype(np.float32)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    graph = ItemIndex.build(vectors, ids, "s", kind="hnsw")
    # two changes in a row: the second one moves rows whose nodes the first one already moved
    first = graph.update_in_place(np.array([5, 40]), fresh[:2], np.array([3, 7]), ["a0", "a1"], fresh[2:4])
    assert first.tombstones == 4 and first.index.ntotal == n + 4 and first.meta.size == n
    second = first.update_in_place(np.array([2, n - 1]), fresh[4:6], np.array([0, n - 2]), ["b0"], fresh[6:7])
    assert second.tombstones == 8 and second.meta.size == n - 1

    expected_vectors = {i: v for i, v in zip(ids, vectors, strict=True)}
    expected_vectors |= {"i5": fresh[0], "i40": fresh[1], "a0": fresh[2], "a1": fresh[3], "b0": fresh[6]}
    expected_ids = [i for i in ids if i not in ("i3", "i7")] + ["a0", "a1"]
    expected_vectors |= {expected_ids[2]: fresh[4], expected_ids[n - 1]: fresh[5]}
    expected_ids = [i for r, i in enumerate(expected_ids) if r not in (0, n - 2)] + ["b0"]
    assert list(second.item_ids) == expected_ids
    stacked = np.stack([expected_vectors[i] for i in expected_ids])
    np.testing.assert_allclose(second.vectors(), stacked, atol=1e-6)
    exact = ItemIndex.build(stacked, expected_ids, "s")
    queries = np.concatenate([vectors[[0, 3, 5, 7, 40]], fresh, stacked[::50]])
    found, _ = second.search(queries, 10)
    assert recall_against_exact(found, exact.search(queries, 10)[0], 10) >= 0.95
    gone = {"i0", "i3", "i7", f"i{n - 2}"} | {"i5", "i40"} - set(expected_ids)
    assert not gone & {i for row in found for i in row}, "a tombstone is never returned"
    assert [row[0] for row in found[5:14]][:2] == ["i5", "i40"] and found[11][0] == "b0"
    rows = np.arange(0, len(expected_ids), 7)  # filters name rows of the new catalog
    view = second.exact_view()
    assert view.search(queries, 10, allowed_rows=rows)[0] == exact.search(queries, 10, allowed_rows=rows)[0]
    assert view.search(queries, 10)[0] == exact.search(queries, 10)[0]
    second.save(tmp_path / "graph")
    loaded = ItemIndex.load(tmp_path / "graph")
    assert loaded.tombstones == 8 and loaded.search(queries, 10)[0] == found
    assert ItemIndex.load(tmp_path / "graph").exact_view().search(queries, 5)[0] == exact.search(queries, 5)[0]

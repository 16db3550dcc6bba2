"""HNSW with exact fallback: selective filters and deep k go to exact search over the graph's own vectors."""

from __future__ import annotations

import numpy as np
import pytest

from harnesslm.index.fallback import ExactFallbackIndex
from harnesslm.index.item_index import ItemIndex


def normalised(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def indexes() -> tuple[ExactFallbackIndex, ItemIndex, np.ndarray]:
    items = normalised(3000, 16, 0)
    ids = [f"i{n}" for n in range(len(items))]
    graph = ItemIndex.build(items, ids, space="s", kind="hnsw", hnsw_m=8, hnsw_ef_search=32)
    exact = ItemIndex.build(items, ids, space="s")
    return ExactFallbackIndex(graph), exact, normalised(20, 16, 1)


def test_exact_view_shares_the_graph_vectors_and_searches_exactly(indexes) -> None:
    served, exact, queries = indexes
    assert served.exact.meta.kind == "exact" and served.exact.index.ntotal == 3000
    np.testing.assert_array_equal(served.ann.vectors(), exact.vectors())
    assert served.exact.search(queries, 10)[0] == exact.search(queries, 10)[0]


def test_unfiltered_shallow_searches_use_the_graph(indexes) -> None:
    served, exact, queries = indexes
    before = dict(served.searches)
    found, _ = served.search(queries, 10)
    assert served.searches["ann"] == before["ann"] + 1 and served.searches["exact"] == before["exact"]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact.search(queries, 10)[0], strict=True)])
    assert overlap > 0.8


def test_selective_filters_and_deep_k_search_exactly(indexes) -> None:
    served, exact, queries = indexes
    rare = np.arange(0, 3000, 100)  # 30 items, 1% of the catalog
    assert served.uses_exact(10, rare) and not served.uses_exact(10, np.arange(1000))
    assert served.uses_exact(64, None)  # above efSearch 32
    found, _ = served.search(queries, 10, allowed_rows=rare)
    assert found == exact.search(queries, 10, allowed_rows=rare)[0]
    assert all(len(row) == 10 for row in found)


def test_only_an_hnsw_graph_can_be_wrapped(indexes) -> None:
    _, exact, _ = indexes
    with pytest.raises(ValueError, match="hnsw"):
        ExactFallbackIndex(exact)

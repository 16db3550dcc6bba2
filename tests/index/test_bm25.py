"""BM25 baseline: ranking on a tiny catalogue and the edge cases that must not crash."""

from __future__ import annotations

import pytest

from harnesslm.index.bm25 import BM25Retriever

IDS = ["p1", "p2", "p3", "p4", "p5"]
TEXTS = [
    "Cordless drill with two batteries",
    "Garden hose, 50 ft, green",
    "Drill bit set for wood and metal",
    "LED light bulb, warm white",
    "Outdoor LED flood light",
]


@pytest.fixture(scope="module")
def retriever() -> BM25Retriever:
    return BM25Retriever.fit(IDS, TEXTS)


def test_exact_terms_rank_matching_item_first(retriever: BM25Retriever) -> None:
    hits = retriever.search(["cordless DRILL", "garden hose"], k=3)
    assert hits[0][0][0] == "p1"
    assert [item for item, _ in hits[0]] == ["p1", "p3"]  # only items sharing a term come back
    assert hits[1][0][0] == "p2"
    scores = [score for _, score in hits[0]]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_stop_words_and_unknown_terms_give_no_hits(retriever: BM25Retriever) -> None:
    assert retriever.search(["the and of", "zzzz qqqq", ""], k=5) == [[], [], []]


def test_k_larger_than_corpus(retriever: BM25Retriever) -> None:
    hits = retriever.search(["led light drill"], k=100)[0]
    assert sorted(item for item, _ in hits) == ["p1", "p3", "p4", "p5"]
    assert len(retriever) == 5


def test_k_truncates_and_ties_keep_corpus_order() -> None:
    retriever = BM25Retriever.fit(["a", "b", "c"], ["red lamp", "red lamp", "blue lamp"])
    assert retriever.search_ids(["red"], k=1) == [["a"]]
    assert retriever.search_ids(["lamp"], k=2) == [["a", "b"]]


def test_empty_document_is_indexed() -> None:
    retriever = BM25Retriever.fit(["a", "b"], ["", "steel hammer"])
    assert retriever.search_ids(["hammer", "the"], k=5) == [["b"], []]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="ids"):
        BM25Retriever.fit(["a"], ["x", "y"])
    with pytest.raises(ValueError, match="unique"):
        BM25Retriever.fit(["a", "a"], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        BM25Retriever.fit([], [])
    with pytest.raises(ValueError, match="indexable"):
        BM25Retriever.fit(["a", "b"], ["the", "x"])
    with pytest.raises(ValueError, match="k must be"):
        BM25Retriever.fit(["a"], ["xylophone"]).search(["xylophone"], k=0)


def test_saved_index_ranks_exactly_as_the_built_one(retriever: BM25Retriever, tmp_path) -> None:
    retriever.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25")
    queries = ["cordless drill", "led light", "wood metal bits"]
    assert loaded.search(queries, k=5) == retriever.search(queries, k=5)
    assert loaded.ids == IDS
    with pytest.raises(FileNotFoundError, match="no BM25 index"):
        BM25Retriever.load(tmp_path / "missing")


def test_allowed_rows_keep_only_those_items(retriever: BM25Retriever) -> None:
    rows = retriever.rows_of(["p4"])  # the warm white bulb, not the flood light
    assert [item for item, _ in retriever.search(["led light"], k=5, allowed_rows=rows)[0]] == ["p4"]
    assert retriever.search(["garden hose"], k=5, allowed_rows=rows) == [[]]

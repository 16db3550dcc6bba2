"""Alignment pool sources: pseudo-queries cut from titles, merging sources, seeded draws, cached generations."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from harnesslm.pool.pseudo_queries import first_segment, pseudo_queries, pseudo_queries_for, words_of
from harnesslm.pool.sources import PoolSource, cached_texts, encodes_alike, merge_sources, take

TITLES = [
    "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome (Valve Not Included)",
    "BEHR Premium Textured DeckOver 1-gal. #SC-141 Tugboat Wood and Concrete Coating",
    "Simpson Strong-Tie 12-Gauge Angle",
    "Hammer",
]


def test_first_segment_stops_at_attribute_breaks() -> None:
    assert first_segment(TITLES[0]) == "Delta Vero 1-Handle Shower Only Faucet Trim Kit"
    assert first_segment("Cordless Drill with Battery, 20V") == "Cordless Drill"
    assert first_segment("GE 24 in. Gas Wall Oven") == "GE 24 in. Gas Wall Oven"  # "in." is a unit, not a break


def test_words_drop_model_codes_and_edge_punctuation() -> None:
    assert words_of("BEHR 1-gal. #SC-141 (Tugboat)") == ["behr", "1-gal", "tugboat"]


def test_pseudo_queries_start_with_the_head_phrase() -> None:
    import random

    queries = pseudo_queries_for(TITLES[0], 4, random.Random(0))
    assert queries[0] == "trim kit"
    assert len(queries) == 4 and len(set(queries)) == 4
    assert all(2 <= len(q.split()) <= 4 for q in queries)
    assert all(q == q.lower() for q in queries)
    assert pseudo_queries_for("Hammer", 3, random.Random(0)) == ["hammer"]
    assert pseudo_queries_for("  ", 3, random.Random(0)) == []


def test_pseudo_queries_are_seeded_distinct_and_capped() -> None:
    first = pseudo_queries(TITLES, per_item=2, seed=3)
    assert first == pseudo_queries(TITLES, per_item=2, seed=3)
    assert len(first) == len(set(first)) <= 2 * len(TITLES)
    assert len(pseudo_queries(TITLES, per_item=1)) <= len(TITLES)
    assert pseudo_queries(TITLES * 3, per_item=2, seed=3) == first  # a repeated title adds nothing new


def _source(name: str, texts: list[str], start: float) -> PoolSource:
    targets = start + np.arange(len(texts), dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    return PoolSource(name, texts, targets, generate_seconds=1.5)


def test_merge_sources_drops_held_out_and_repeated_texts_keeping_their_targets() -> None:
    pool = merge_sources(
        [_source("a", ["x", "y", "held"], 0.0), _source("b", ["y", "z", ""], 10.0)],
        held_out={"held"},
    )
    assert pool.texts == ["x", "y", "z"]
    np.testing.assert_array_equal(pool.targets[:, 0], [0.0, 1.0, 11.0])  # "y" keeps source a's target
    assert pool.sources["a"] == {"offered": 3, "kept": 2, "generate_s": 1.5, "encode_s": 0.0}
    assert pool.sources["b"]["kept"] == 1
    assert len(pool) == 3


def test_merge_sources_of_nothing_is_empty() -> None:
    pool = merge_sources([_source("a", [], 0.0)], held_out=set())
    assert len(pool) == 0


def test_take_is_seeded_and_grows_as_a_superset() -> None:
    items = list(range(50))
    assert take(items, None, seed=1) != items and sorted(take(items, None, seed=1)) == items
    assert take(items, 0, seed=1) == []
    small, large = take(items, 5, seed=1), take(items, 20, seed=1)
    assert large[:5] == small
    assert take(items, 5, seed=2) != small


def test_cached_texts_makes_once(tmp_path) -> None:
    calls = []

    def make() -> list[str]:
        calls.append(1)
        return ["a", "b"]

    path = tmp_path / "pool" / "x.json"
    assert cached_texts(path, make) == (["a", "b"], False)
    assert cached_texts(path, make) == (["a", "b"], True)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("prompts", "alike"),
    [({}, True), ({"query": "", "document": ""}, True), ({"query": "query: ", "document": "passage: "}, False)],
)
def test_encodes_alike_reads_the_model_prompts(prompts: dict, alike: bool) -> None:
    model = SentenceTransformer.__new__(SentenceTransformer)
    model.__dict__["prompts"] = prompts
    model.__dict__["default_prompt_name"] = None
    assert encodes_alike(model) is alike


def test_a_source_repeated_weighs_more_in_the_pool() -> None:
    from harnesslm.pool.sources import with_repeated

    sources = [
        PoolSource("train_queries", ["drill", "saw"], np.eye(2, dtype=np.float32)),
        PoolSource("catalog_texts", ["Cordless Drill 20V"], np.ones((1, 2), dtype=np.float32)),
    ]
    pool = with_repeated(merge_sources(sources, held_out=set()), "train_queries", 3)
    assert pool.texts == ["drill", "saw", "Cordless Drill 20V", "drill", "saw", "drill", "saw"]
    assert np.array_equal(pool.targets[3], [1.0, 0.0]) and len(pool.targets) == 7
    assert pool.sources["train_queries"]["repeated"] == 3
    assert with_repeated(pool, "catalog_texts", 1) is pool

"""Query and document prompts of the teacher, end to end: encoding, caches, fingerprints, training, the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harnesslm.encoding.cache import cache_path, encode
from harnesslm.models.fingerprint import model_fingerprint
from harnesslm.models.model_loading import load_model
from harnesslm.models.prompts import encode_as, prompt_of, set_prompts, training_prompts

TEXTS = ["cordless drill", "white paint"]


@pytest.fixture
def teacher(tiny_teacher: Path):
    return load_model(str(tiny_teacher))


def _plain(model, texts: list[str]) -> np.ndarray:
    return encode(model, texts, role="query")


def test_a_teacher_without_prompts_encodes_as_before(teacher) -> None:
    assert prompt_of(teacher, "query") == prompt_of(teacher, "document") == ""
    np.testing.assert_allclose(encode(teacher, TEXTS, role="document"), encode(teacher, TEXTS, role="query"))
    assert training_prompts(teacher, ["anchor", "positive"]) is None
    fingerprint = model_fingerprint(teacher)
    assert cache_path(teacher, TEXTS, Path("c"), role="document").name == (
        cache_path(teacher, TEXTS, Path("c"), role="query").name
    )
    assert cache_path(teacher, TEXTS, Path("c")).name.startswith(f"{fingerprint}-")
    assert cache_path(teacher, TEXTS, Path("c")).name.endswith(f"-{teacher.max_seq_length}.npy")


def test_each_role_gets_its_own_prompt(teacher) -> None:
    raw_query = _plain(teacher, ["Q: cordless drill"])
    raw_document = _plain(teacher, ["D: cordless drill"])
    before = model_fingerprint(teacher)
    set_prompts(teacher, query="Q: ", document="D: ")
    assert prompt_of(teacher, "query") == "Q: " and prompt_of(teacher, "document") == "D: "
    np.testing.assert_allclose(encode(teacher, ["cordless drill"], role="query"), raw_query, atol=1e-6)
    np.testing.assert_allclose(encode(teacher, ["cordless drill"], role="document"), raw_document, atol=1e-6)
    assert model_fingerprint(teacher) != before  # prompted embeddings never reuse unprompted caches or indexes
    assert cache_path(teacher, TEXTS, Path("c"), role="query") != cache_path(teacher, TEXTS, Path("c"), role="document")
    assert training_prompts(teacher, ["anchor", "positive", "negative_1"]) == {
        "anchor": "Q: ",
        "positive": "D: ",
        "negative_1": "D: ",
    }


def test_a_passage_prompt_counts_as_the_document_prompt_and_is_replaced(teacher) -> None:
    teacher.prompts = {"query": "query: ", "passage": "passage: "}
    assert prompt_of(teacher, "document") == "passage: "
    set_prompts(teacher, document="title: none | text: ")
    assert teacher.prompts == {"query": "query: ", "document": "title: none | text: "}
    teacher.prompts = {"Retrieval-query": "task: search result | query: "}
    set_prompts(teacher, query="Retrieval-query")  # a prompt of the model's own, by name
    assert prompt_of(teacher, "query") == "task: search result | query: "


def test_encoders_without_prompt_methods_fall_back_to_encode() -> None:
    class Plain:
        def encode(self, texts, **kwargs):
            return [len(t) for t in texts]

    assert encode_as(Plain(), ["ab", "c"], "query") == [2, 1]

"""Phrases as rows of a static table (students.phrases): read as one token, starting as the sum of their words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers.sentence_transformer.modules import StaticEmbedding

from harnesslm.models.model_loading import load_model
from harnesslm.students.numpy_encoder import StaticQueryEncoder
from harnesslm.students.phrases import frequent_phrases, with_phrases
from harnesslm.students.static import static_model, static_student

TEXTS = ["cordless drill kit", "Cordless Drill 20v", "drill bit set", "cordless drill bit", "wood screw"] * 6


def _table(tiny_teacher: Path) -> StaticEmbedding:
    tokenizer = load_model(str(tiny_teacher)).tokenizer.backend_tokenizer
    size = tokenizer.get_vocab_size()
    weights = torch.randn(size, 8, generator=torch.Generator().manual_seed(0))
    return StaticEmbedding(tokenizer, embedding_weights=weights)


def test_frequent_phrases_are_the_shops_common_word_runs(tiny_teacher: Path) -> None:
    table = _table(tiny_teacher)
    phrases = frequent_phrases(table.tokenizer, TEXTS, size=3, min_count=10)
    # 18 and 12 times, lower-cased as the table reads them; every other run is seen 6 times
    assert phrases == ["cordless drill", "drill bit"]
    assert "wood screw" in frequent_phrases(table.tokenizer, TEXTS, size=20, min_count=6)
    assert frequent_phrases(table.tokenizer, TEXTS, size=3, min_count=100) == []


def test_a_phrase_is_one_token_whose_row_starts_as_the_sum_of_its_words(tiny_teacher: Path) -> None:
    table = _table(tiny_teacher)
    words = table.tokenizer.encode("cordless drill", add_special_tokens=False).ids
    phrased = with_phrases(table, ["cordless drill"])
    ids = phrased.tokenizer.encode("dewalt Cordless Drill kit", add_special_tokens=False).ids
    assert phrased.num_embeddings == table.num_embeddings + 1 and table.num_embeddings in ids
    row = phrased.embedding.weight[table.num_embeddings]
    assert torch.allclose(row, table.embedding.weight[words].sum(dim=0))
    # the untrained model's embedding keeps its direction: two rows replaced by their sum
    before = static_model(table).encode(["dewalt cordless drill kit"])
    after = static_model(phrased).encode(["dewalt cordless drill kit"])
    assert np.allclose(before, after, atol=1e-5)
    # a word on its own, or a longer word, is not the phrase
    assert table.num_embeddings not in phrased.tokenizer.encode("cordless drills", add_special_tokens=False).ids


def test_phrases_survive_saving_and_the_numpy_encoder_reads_them(tiny_teacher: Path, tmp_path: Path) -> None:
    student = static_student(with_phrases(_table(tiny_teacher), ["cordless drill", "drill bit"]), teacher_dim=16)
    student.save(str(tmp_path / "s"))
    loaded = load_model(str(tmp_path / "s"))
    queries = ["cordless drill bit", "drill bit set", "hammer"]
    assert np.allclose(loaded.encode(queries), student.encode(queries), atol=1e-6)
    assert np.allclose(StaticQueryEncoder.from_model(loaded).encode(queries), student.encode(queries), atol=1e-5)

"""A static student's tokenizer can read every text lower-cased (students.lowercase)."""

from __future__ import annotations

from pathlib import Path

import torch
from sentence_transformers.sentence_transformer.modules import StaticEmbedding

from harnesslm.distill import copy_table
from harnesslm.models.model_loading import load_model
from harnesslm.students.lowercase import lowercased, reads_case
from harnesslm.students.word_starts import with_word_starts

TEXTS = ["cordless drill", "Cordless Drill", "DeWalt drill bit set", "dewalt hinge", "Hinge Pin"] * 5


def test_title_case_reads_like_lower_case_and_word_starts_survive(sentencepiece_style) -> None:
    tokenizer = with_word_starts(sentencepiece_style(TEXTS, 120))
    assert reads_case(tokenizer)
    assert tokenizer.encode("Cordless Drill").ids != tokenizer.encode("cordless drill").ids

    fixed = lowercased(tokenizer)
    assert not reads_case(fixed)
    assert (
        fixed.encode("Cordless Drill").ids
        == fixed.encode("cordless drill").ids
        == tokenizer.encode("cordless drill").ids
    )  # lower-case text keeps the tokens it had
    drill = fixed.encode("DRILL").ids
    assert fixed.encode("Cordless DRILL").ids[-len(drill) :] == drill  # the first word still reads as a word start
    assert lowercased(fixed) is fixed
    assert reads_case(tokenizer)  # the original is left as it was


def test_an_uncased_tokenizer_is_left_as_it_is(tiny_teacher: Path) -> None:
    backend = load_model(str(tiny_teacher)).tokenizer.backend_tokenizer
    assert not reads_case(backend)
    assert lowercased(backend) is backend


def test_a_lowercase_student_table_reads_capitals_like_lower_case(sentencepiece_style) -> None:
    tokenizer = with_word_starts(sentencepiece_style(TEXTS, 120))
    weights = torch.randn(tokenizer.get_vocab_size(), 4, generator=torch.Generator().manual_seed(0))
    table = StaticEmbedding(tokenizer, embedding_weights=weights)
    student_table = copy_table(table, lowercase=True)
    upper, lower = (student_table(student_table.preprocess([t]))["sentence_embedding"] for t in ("DeWalt", "dewalt"))
    torch.testing.assert_close(upper, lower)
    assert reads_case(table.tokenizer)  # the baseline table keeps its own tokenizer
    kept = copy_table(table)
    title, lower = (kept(kept.preprocess([t]))["sentence_embedding"] for t in ("Cordless", "cordless"))
    assert not torch.equal(title, lower)

"""A static student's tokenizer reads a text's first word as a word start (students.word_starts)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from harnesslm.models.model_loading import load_model
from harnesslm.students.static import distill_static
from harnesslm.students.word_starts import reads_first_word_mid_word, with_word_starts

TEXTS = ["cordless drill", "drill bit set", "cordless hinge", "hinge pin", "pin drill"] * 5


def test_the_first_word_gets_the_tokens_it_has_after_a_space(sentencepiece_style) -> None:
    tokenizer = sentencepiece_style(TEXTS, 80)
    assert reads_first_word_mid_word(tokenizer)
    assert tokenizer.encode("drill").ids != tokenizer.encode("pin drill").ids[-len(tokenizer.encode("drill").ids) :]

    fixed = with_word_starts(tokenizer)
    drill = fixed.encode("drill").ids
    assert fixed.encode("pin drill").ids[-len(drill) :] == drill
    assert fixed.encode("  drill").ids == drill  # leading spaces do not add a token
    assert not reads_first_word_mid_word(fixed)
    assert with_word_starts(fixed) is fixed
    assert reads_first_word_mid_word(tokenizer)  # the original is left as it was


def test_byte_level_tokenizers_get_the_prefix_space() -> None:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(
        TEXTS, trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    fixed = with_word_starts(tokenizer)
    assert fixed.encode("drill").tokens == fixed.encode("pin drill").tokens[-len(fixed.encode("drill").tokens) :]
    assert fixed.encode("drill").tokens[0].startswith("\u0120")


def test_wordpiece_tokenizers_are_left_as_they_are(tiny_teacher: Path) -> None:
    teacher = load_model(str(tiny_teacher))
    backend = teacher.tokenizer.backend_tokenizer
    assert not reads_first_word_mid_word(backend)
    assert with_word_starts(backend) is backend
    table = distill_static(teacher, pca_dims=None)
    assert (
        table.tokenizer.encode("cordless hinge").tokens
        == backend.encode("cordless hinge", add_special_tokens=False).tokens
    )

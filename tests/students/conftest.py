"""Shared tokenizer builders for the student tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers


def build_sentencepiece_style(texts: list[str], vocab_size: int) -> Tokenizer:
    """A BPE tokenizer built like Gemma's: spaces become ``▁`` and mark the word that follows them."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Replace(" ", "\u2581")
    tokenizer.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    tokenizer.train_from_iterator(
        [" " + t for t in texts], trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>"])
    )
    return tokenizer


@pytest.fixture
def sentencepiece_style() -> Callable[[list[str], int], Tokenizer]:
    """Builds a Gemma-style BPE tokenizer trained on the given texts (see :func:`build_sentencepiece_style`)."""
    return build_sentencepiece_style

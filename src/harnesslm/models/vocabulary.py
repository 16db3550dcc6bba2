"""A static student's domain vocabulary: the shop's own words as whole tokens of its embedding table.

A subword table splits ``dewalt`` into ``dew ##al ##t`` and averages three rows that mean nothing apart; a row
of its own for each brand, material and product word lets alignment give it the teacher's meaning. model2vec
distils such words through the teacher (``distill_from_model(vocabulary=...)``); this module only chooses
them. It reads words the way the teacher's tokenizer does (its own normalizer and pre-tokenizer), so a word
chosen here is the token the student sees at query time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast


def domain_vocabulary(
    tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], size: int, min_count: int = 2
) -> list[str]:
    """Up to ``size`` of the most frequent words of ``texts`` that the tokenizer lacks as whole tokens.

    Words seen fewer than ``min_count`` times are left out (typos and part numbers mostly), and so are words
    the tokenizer already has: their rows come with the teacher's own vocabulary. Ties keep first-seen order,
    so the choice is deterministic.
    """
    if size <= 0:
        return []
    backend = tokenizer.backend_tokenizer
    normalize = backend.normalizer.normalize_str if backend.normalizer else (lambda s: s)
    if backend.pre_tokenizer:
        split = backend.pre_tokenizer.pre_tokenize_str
    else:
        split = lambda s: [(w, None) for w in s.split()]  # noqa: E731
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in split(normalize(text)))
    known = tokenizer.get_vocab()
    words = [w for w, n in counts.most_common() if n >= min_count and w not in known and w.strip()]
    return words[:size]

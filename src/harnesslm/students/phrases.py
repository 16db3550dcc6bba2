"""Phrases as rows of a static table: the shop's frequent multi-word units (``cordless drill``, ``wood screw``,
``3/4 in.``) read as one token each.

A static student averages the rows of a text's tokens, so a unit whose meaning is not the mean of its words is
blurred, and ``drill bit`` reads like ``bit drill``. Each phrase here becomes an added token of the table's
tokenizer: ``tokenizers`` matches added tokens whole, on word boundaries and leftmost-longest, before a text is
split into words, so ``dewalt cordless drill kit`` reads as ``dewalt`` + ``cordless drill`` + ``kit``. A phrase's
row starts as the sum of its words' rows, so the student's output starts where it was (a mean of rows keeps its
direction when two rows are replaced by their sum), and alignment then moves each phrase's row on its own. At
query time it costs nothing: the tokenizer does the matching, and the numpy and ONNX encoders read the same
tokenizer file.

Only a WordPiece (BERT-family) table takes phrases this way, as it takes whole shop words
(:mod:`harnesslm.students.vocabulary`); for other tokenizers none are added, with a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from sentence_transformers.sentence_transformer.modules import StaticEmbedding
from tokenizers import AddedToken, Tokenizer
from tokenizers.models import WordPiece

logger = logging.getLogger(__name__)


def frequent_phrases(
    tokenizer: Tokenizer, texts: Iterable[str], size: int, min_count: int = 10, max_words: int = 3
) -> list[str]:
    """Up to ``size`` of the most frequent runs of 2 to ``max_words`` words in ``texts``, as the table's tokenizer
    normalises them, seen at least ``min_count`` times; ties keep first-seen order (deterministic)."""
    if size <= 0:
        return []
    if not isinstance(tokenizer.model, WordPiece):
        logger.warning("phrases left out: only a WordPiece table matches added phrases inside a text")
        return []
    normalize = tokenizer.normalizer.normalize_str if tokenizer.normalizer else (lambda s: s)
    counts: Counter[str] = Counter()
    for text in texts:
        words = normalize(text).split()
        for n in range(2, max_words + 1):
            counts.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return [p for p, c in counts.most_common() if c >= min_count and any(ch.isalnum() for ch in p)][:size]


def with_phrases(table: StaticEmbedding, phrases: Sequence[str]) -> StaticEmbedding:
    """A new table whose tokenizer reads each phrase as one token, its row the sum of its words' rows."""
    if not phrases:
        return table
    tokenizer = Tokenizer.from_str(table.tokenizer.to_str())
    weights = table.embedding.weight.detach()
    rows = []
    kept = []
    for phrase in phrases:
        ids = tokenizer.encode(phrase, add_special_tokens=False).ids
        if len(ids) >= 2 and phrase not in tokenizer.get_vocab():
            rows.append(weights[ids].sum(dim=0))
            kept.append(phrase)
    start = tokenizer.get_vocab_size()
    added = tokenizer.add_tokens([AddedToken(p, single_word=True, normalized=True) for p in kept])
    if kept and (added != len(kept) or tokenizer.token_to_id(kept[0]) != start):
        raise ValueError("the phrases did not get the next ids of the table's tokenizer")
    table_rows = torch.cat([weights, torch.stack(rows)]) if rows else weights.clone()
    return StaticEmbedding(tokenizer, embedding_weights=table_rows)

"""A static student's domain vocabulary: the shop's own words as whole tokens of its embedding table.

A subword table splits ``dewalt`` into ``dew ##al ##t`` and averages three rows that mean nothing apart; a row
of its own for each brand, material and product word lets alignment give it the teacher's meaning. model2vec
distils such words through the teacher (``distill_from_model(vocabulary=...)``); this module only chooses
them. It reads words the way the teacher's tokenizer does (its own normalizer and pre-tokenizer), so a word
chosen here is the token the student sees at query time.

Only WordPiece tokenizers (the BERT family) can take such words. A BPE or SentencePiece tokenizer (Gemma, Qwen,
RoBERTa) marks a word inside a text with a prefix (``▁drill``, ``Ġdrill``) and builds tokens only through its
merges: a word added to its vocabulary is never produced inside a query, so its row would be dead weight, and
model2vec's rewrite of such a tokenizer can break its merges. For those the vocabulary is left out, with a warning.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterable

from tokenizers.models import WordPiece
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)


def takes_whole_words(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Whether a word added to the tokenizer's vocabulary is produced as one token wherever it occurs."""
    return isinstance(tokenizer.backend_tokenizer.model, WordPiece)


def unpadded(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """A copy of ``tokenizer`` that neither pads nor truncates, for model2vec to turn added words into ids.

    sentence-transformers models often ship a ``tokenizer.json`` that pads every text to a fixed length
    (all-MiniLM-L6-v2 and all-mpnet-base-v2: 128). model2vec encodes each added word with that tokenizer and
    then attends to every id it got, so ``dewalt`` was read as ``[CLS] dew ##al ##t [SEP]`` followed by 123
    attended ``[PAD]`` tokens: its row was mostly padding, and those words took ~25x longer to distil than the
    rest of the vocabulary. (A teacher saved by the recipe pads only to a batch's longest text: unaffected.)
    """
    plain = copy.deepcopy(tokenizer)
    plain.backend_tokenizer.no_padding()
    plain.backend_tokenizer.no_truncation()
    return plain


def domain_vocabulary(
    tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], size: int, min_count: int = 2
) -> list[str]:
    """Up to ``size`` of the most frequent words of ``texts`` that the tokenizer lacks as whole tokens.

    Words seen fewer than ``min_count`` times are left out (typos and part numbers mostly), and so are words
    the tokenizer already has: their rows come with the teacher's own vocabulary. Ties keep first-seen order,
    so the choice is deterministic. A tokenizer that cannot take whole words (see :func:`takes_whole_words`) gets
    none.
    """
    if size <= 0:
        return []
    if not takes_whole_words(tokenizer):
        kind = type(tokenizer.backend_tokenizer.model).__name__
        logger.warning(
            "domain_vocabulary=%d left out: the teacher's %s tokenizer never produces added words inside a text "
            "(only WordPiece tokenizers do); the static table keeps the teacher's own tokens",
            size,
            kind,
        )
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

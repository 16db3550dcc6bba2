"""A static student that reads every text lower-cased.

A cased teacher tokenizer (EmbeddingGemma, Qwen, Llama) gives ``DeWalt`` and ``dewalt`` different tokens. The
alignment pool mixes shoppers' queries (mostly lower case) with catalog texts (Title Case), so a static student
trained on it splits what it learns between the two spellings, and a query only ever reads the lower-case
rows. Lower-casing every text puts the catalog's signal on the rows queries use. The teacher is unchanged: its
targets are still its embeddings of the original texts.

The change lives in the tokenizer's normalizer, so it travels with ``tokenizer.json`` into the saved student,
its ONNX export and the service, and a query typed in capitals is read like one typed in lower case.
"""

from __future__ import annotations

from tokenizers import Tokenizer, normalizers

from harnesslm.students.word_starts import with_normalizers_first

_PROBE = "AbC xYz"


def reads_case(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer`` tokenises a text and its lower-cased form differently."""
    return (
        tokenizer.encode(_PROBE, add_special_tokens=False).ids
        != tokenizer.encode(_PROBE.lower(), add_special_tokens=False).ids
    )


def lowercased(tokenizer: Tokenizer) -> Tokenizer:
    """``tokenizer`` itself when it already ignores case (BERT uncased), else a copy that lower-cases first."""
    if not reads_case(tokenizer):
        return tokenizer
    return with_normalizers_first(tokenizer, [normalizers.Lowercase()])

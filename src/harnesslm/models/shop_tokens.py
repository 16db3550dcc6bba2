"""A static table distilled from only the tokens a shop's texts use.

model2vec distils a static table by pushing *every* token of the teacher's tokenizer through the teacher. A
multilingual LLM embedder has a huge vocabulary (EmbeddingGemma: 262,144 tokens, about 35 min on 2 cores
here), of which one shop's catalog and query log use a few percent (Home Depot: about 15,000). This module
runs model2vec's own steps (vocabulary cleaning, one forward pass per token, PCA, Zipf/SIF weights) on the
used tokens only, and leaves the others a zero row.

model2vec has no option for this: its ``token_remove_pattern`` is a regex that also edits the tokenizer (a
BPE tokenizer then splits words differently), so it cannot keep the teacher's tokenization and drop a set of
200,000 tokens. Here the tokenizer is model2vec's, unchanged, and every text tokenizes as with a full table.

What changes: a token no shop text uses has a zero row, so a query word made only of such tokens is skipped
(a zero row adds nothing to the mean, and the final normalisation undoes the dilution). PCA is fitted on the
used tokens' outputs. Each used token keeps the SIF weight its rank in the full vocabulary gives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer
from transformers import PreTrainedModel, PreTrainedTokenizerFast

# model2vec's defaults for distill_from_model, kept so a shop table differs from a full one only in its rows.
SIF_COEFFICIENT = 1e-4
TOKEN_REMOVE_PATTERN = r"\[unused\d+\]"


def used_token_ids(tokenizer: Tokenizer, texts: Iterable[str], batch: int = 10_000) -> list[int]:
    """Sorted ids of every token ``tokenizer`` produces for ``texts`` (no special tokens)."""
    used: set[int] = set()
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == batch:
            used.update(i for enc in tokenizer.encode_batch(chunk, add_special_tokens=False) for i in enc.ids)
            chunk = []
    if chunk:
        used.update(i for enc in tokenizer.encode_batch(chunk, add_special_tokens=False) for i in enc.ids)
    return sorted(used)


def static_tokenizer(tokenizer: PreTrainedTokenizerFast, vocabulary: Sequence[str] = ()) -> Tokenizer:
    """The tokenizer model2vec gives a static table of ``tokenizer`` with ``vocabulary``'s whole words added."""
    return _static_vocabulary(tokenizer, vocabulary)[0].to_tokenizer()


def distill_shop_tokens(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    vocabulary: Sequence[str] = (),
    pca_dims: int | None = None,
) -> tuple[Tokenizer, np.ndarray]:
    """The static tokenizer and table (float32, one row per token, zero where unused) for ``texts``' tokens.

    ``vocabulary`` adds whole words, as in ``distill_from_model(vocabulary=...)``; they count as used when a
    text contains them.
    """
    from model2vec.distill.inference import apply_pca, compute_weights, create_embeddings
    from model2vec.tokenizer import turn_tokens_into_ids
    from skeletoken.external.transformers import reshape_embeddings

    static_model, original = _static_vocabulary(tokenizer, vocabulary)
    tokens = static_model.sorted_vocabulary
    static = static_model.to_tokenizer()
    used = used_token_ids(static, texts)
    if not used:
        raise ValueError("the shop's texts use none of the teacher's tokens")
    token_ids = turn_tokens_into_ids([tokens[i] for i in used], original)
    embeddings = create_embeddings(
        tokenized=token_ids,
        model=reshape_embeddings(model, original),
        device="cpu",
        pad_token_id=original.pad_token_id or 0,
        pooling="mean",
    )
    weights = compute_weights(len(tokens), sif_coefficient=SIF_COEFFICIENT)[used]
    embeddings = apply_pca(embeddings, pca_dims) * weights[:, None]
    table = np.zeros((len(tokens), embeddings.shape[1]), dtype=np.float32)
    table[used] = embeddings
    return static, table


def _static_vocabulary(tokenizer: PreTrainedTokenizerFast, vocabulary: Sequence[str]):
    """model2vec's (0.10) cleaned tokenizer model with the added words, and the teacher's own, in the order
    ``distill_from_model`` builds them."""
    from model2vec.tokenizer import clean_and_create_vocabulary
    from skeletoken import TokenizerModel

    original = TokenizerModel.from_transformers_tokenizer(tokenizer).prune_added_tokens()
    static_model = original.deep_copy()
    if static_model.adds_prefix_space is not None:
        static_model.adds_prefix_space = True
    static_model = clean_and_create_vocabulary(static_model, list(vocabulary), re.compile(TOKEN_REMOVE_PATTERN))
    return static_model, original

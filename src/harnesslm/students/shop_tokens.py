"""A static table distilled from only the tokens a shop's texts use.

model2vec distils a static table by pushing *every* token of the teacher's tokenizer through the teacher. A
multilingual LLM embedder has a huge vocabulary (EmbeddingGemma: 262,144 tokens, about 35 min on 2 cores
here), of which one shop's catalog and query log use a few percent (Home Depot: about 16,000). This module
runs model2vec's own steps (vocabulary cleaning, one forward pass per token, PCA, Zipf/SIF weights) on the
used tokens only.

model2vec has no option for this: its ``token_remove_pattern`` is a regex that also edits the tokenizer (a
BPE tokenizer then splits words differently), so it cannot keep the teacher's tokenization and drop a set of
200,000 tokens. Here the tokenizer is model2vec's, unchanged, and every text tokenizes as with a full table.

What changes: a token no shop text uses is not passed through the teacher. Its row is predicted from its input
embedding by a linear map fitted on the distilled tokens (:func:`predicted_rows`). PCA is fitted on the
distilled rows. Every token keeps the SIF weight its rank in the full vocabulary gives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the pipeline imports TABLE_VERSION: keep transformers out of its import
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

# model2vec's defaults for distill_from_model, kept so a shop table differs from a full one only in its rows.
SIF_COEFFICIENT = 1e-4
TOKEN_REMOVE_PATTERN = r"\[unused\d+\]"
# Part of a shop table's cache key: bump it when the rows this module writes change (2: unused rows predicted;
# 3: texts read with word starts, so a text's first word counts its word-start tokens as used; 4: added words
# distilled without the tokenizer's fixed padding, ``students.vocabulary.unpadded``). Full tables with added words
# carry it in their key too.
TABLE_VERSION = 4


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
    """The tokenizer model2vec gives a static table of ``tokenizer`` with ``vocabulary``'s whole words added, reading
    first words as word starts (``students.word_starts``)."""
    from harnesslm.students.word_starts import with_word_starts

    return with_word_starts(_static_vocabulary(tokenizer, vocabulary)[0].to_tokenizer())


def distill_shop_tokens(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    vocabulary: Sequence[str] = (),
    pca_dims: int | None = None,
) -> tuple[Tokenizer, np.ndarray]:
    """The static tokenizer and table (float32, one row per token) distilled from ``texts``' tokens.

    ``vocabulary`` adds whole words, as in ``distill_from_model(vocabulary=...)``; they count as used when a
    text contains them. Every other token gets the row :func:`predicted_rows` gives it.
    """
    from model2vec.distill.inference import compute_weights, create_embeddings
    from model2vec.tokenizer import turn_tokens_into_ids
    from skeletoken.external.transformers import reshape_embeddings

    from harnesslm.students.word_starts import with_word_starts

    static_model, original = _static_vocabulary(tokenizer, vocabulary)
    tokens = static_model.sorted_vocabulary
    static = with_word_starts(static_model.to_tokenizer())
    used = used_token_ids(static, texts)
    if not used:
        raise ValueError("the shop's texts use none of the teacher's tokens")
    token_ids = turn_tokens_into_ids(tokens, original)
    model = reshape_embeddings(model, original)
    outputs = create_embeddings(
        tokenized=[token_ids[i] for i in used],
        model=model,
        device="cpu",
        pad_token_id=original.pad_token_id or 0,
        pooling="mean",
    )
    inner = slice(len(original.bos_ids or []), -len(original.eos_ids or []) or None)
    inputs = _input_rows(model, [ids[inner] or ids for ids in token_ids])
    embeddings = predicted_rows(inputs, np.asarray(used), outputs)
    embeddings = _pca(embeddings, embeddings[used], pca_dims)
    weights = compute_weights(len(tokens), sif_coefficient=SIF_COEFFICIENT)
    return static, (embeddings * weights[:, None]).astype(np.float32)


def predicted_rows(inputs: np.ndarray, used: np.ndarray, outputs: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Every token's row: the teacher's output where it was distilled (``used``), else a linear prediction of it.

    The map from a token's input embedding (the teacher's own lookup table, no forward pass) to its distilled
    output is fitted by ridge regression on the used tokens. A token no shop text uses still means roughly what
    it should, instead of nothing: model2vec has no such fallback, so it is written here (closed form, numpy).
    ``ridge`` is relative to the inputs' mean variance.
    """
    x, y = inputs[used].astype(np.float64), outputs.astype(np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc = x - x_mean
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / gram.shape[0]
    coef = np.linalg.solve(gram, xc.T @ (y - y_mean))
    rows = ((inputs - x_mean) @ coef + y_mean).astype(np.float32)
    rows[used] = outputs
    return rows


def _input_rows(model: PreTrainedModel, token_ids: list[list[int]]) -> np.ndarray:
    """Each token's mean input embedding over its ids (a whole word added to the table has several)."""
    import torch

    table = model.get_input_embeddings().weight.detach().float().numpy()
    flat = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in token_ids])
    counts = np.asarray([len(ids) for ids in token_ids])
    bags = torch.nn.functional.embedding_bag(
        torch.from_numpy(flat), torch.from_numpy(table), torch.from_numpy(np.r_[0, counts.cumsum()[:-1]])
    )
    return bags.numpy()


def _pca(rows: np.ndarray, fit_on: np.ndarray, dims: int | None) -> np.ndarray:
    """``rows`` projected on the first ``dims`` principal axes of ``fit_on`` (the distilled rows only, so the
    predicted ones do not shape the axes); as is when ``dims`` is None or not below the width or the count."""
    if dims is None or dims >= rows.shape[1] or dims >= len(fit_on):
        return rows
    mean = fit_on.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(fit_on - mean, rowvar=False))
    return ((rows - mean) @ vectors[:, ::-1][:, :dims]).astype(np.float32)


def _static_vocabulary(tokenizer: PreTrainedTokenizerFast, vocabulary: Sequence[str]):
    """model2vec's (0.10) cleaned tokenizer model with the added words, and the teacher's own, in the order
    ``distill_from_model`` builds them."""
    from model2vec.tokenizer import clean_and_create_vocabulary
    from skeletoken import TokenizerModel

    from harnesslm.students.vocabulary import unpadded

    original = TokenizerModel.from_transformers_tokenizer(unpadded(tokenizer)).prune_added_tokens()
    static_model = original.deep_copy()
    if static_model.adds_prefix_space is not None:
        static_model.adds_prefix_space = True
    static_model = clean_and_create_vocabulary(static_model, list(vocabulary), re.compile(TOKEN_REMOVE_PATTERN))
    return static_model, original

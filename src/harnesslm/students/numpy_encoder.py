"""A static student's query encoder in plain numpy: the same numbers as ``SentenceTransformer.encode``, faster.

A static student is a token table, a mean, a linear projection and a normalisation. At batch 1 the work is a
few microseconds, and ``SentenceTransformer.encode`` spends far longer in its per-call machinery (feature
dicts, an ``EmbeddingBag`` call, module hooks, tensor conversions) than in the arithmetic. model2vec's own
inference is numpy for the same reason; it has no projection module, so it cannot run our students as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, StaticEmbedding

EPS = 1e-12  # as torch.nn.functional.normalize
SMALL_BATCH = 8


class StaticQueryEncoder:
    """Tokenise (no special tokens), average the tokens' rows, project, L2-normalise; float32 throughout.

    Build it with :meth:`from_model`; ``encode`` has the :class:`~harnesslm.serving.searcher.QueryEncoder`
    signature, so a :class:`~harnesslm.serving.searcher.Searcher` and the service take it as they are.
    """

    def __init__(self, tokenizer, table: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None) -> None:
        self.tokenizer = tokenizer
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.weight_t = None if weight is None else np.ascontiguousarray(weight.T, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    @classmethod
    def from_model(cls, model: SentenceTransformer) -> StaticQueryEncoder | None:
        """The numpy twin of ``model`` when it is StaticEmbedding [+ linear Dense] + Normalize; else None."""
        modules = list(model)
        if not modules or not isinstance(modules[0], StaticEmbedding) or not isinstance(modules[-1], Normalize):
            return None
        middle = modules[1:-1]
        if len(middle) > 1 or (middle and not _is_linear(middle[0])):
            return None
        table = modules[0].embedding.weight.detach().cpu().numpy()
        if not middle:
            return cls(modules[0].tokenizer, table, None, None)
        linear = middle[0].linear
        bias = linear.bias.detach().cpu().numpy() if linear.bias is not None else None
        return cls(modules[0].tokenizer, table, linear.weight.detach().cpu().numpy(), bias)

    @property
    def dim(self) -> int:
        return self.table.shape[1] if self.weight_t is None else self.weight_t.shape[1]

    def encode(self, queries: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Unit-length embeddings, one row per query (a query without known tokens gets a zero row)."""
        texts = list(queries)
        if len(texts) == 1:  # the search box: skip the batch machinery
            encodings = [self.tokenizer.encode(texts[0], add_special_tokens=False)]
        else:
            encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        pooled = self._mean_rows([encoding.ids for encoding in encodings])
        if self.weight_t is not None:
            pooled = pooled @ self.weight_t
            if self.bias is not None:
                pooled += self.bias
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, EPS)

    def _mean_rows(self, ids: list[list[int]]) -> np.ndarray:
        """Each text's mean token row, in one gather and one segmented sum (a text without tokens: zeros)."""
        pooled = np.zeros((len(ids), self.table.shape[1]), dtype=np.float32)
        if len(ids) <= SMALL_BATCH:  # a few rows: a plain loop has less overhead than the segmented sum
            for row, token_ids in enumerate(ids):
                if token_ids:
                    pooled[row] = self.table[token_ids].mean(axis=0)
            return pooled
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        filled = np.flatnonzero(lengths)
        if len(filled) == 0:
            return pooled
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths[filled])[:-1]])
        sums = np.add.reduceat(self.table[flat], starts, axis=0)
        pooled[filled] = sums / lengths[filled, None].astype(np.float32)
        return pooled


def _is_linear(module) -> bool:
    return isinstance(module, Dense) and isinstance(module.activation_function, torch.nn.Identity)

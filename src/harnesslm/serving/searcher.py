"""Encode a query and search the item index: the online path, and what end-to-end latency measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sentence_transformers import SentenceTransformer

from harnesslm.encoding.cache import encode
from harnesslm.index.item_index import ItemIndex


class QueryEncoder(Protocol):
    """Anything that turns queries into L2-normalised float32 embeddings in the index's space (an exported
    ONNX encoder, for instance); a ``SentenceTransformer`` is used directly."""

    def encode(self, queries: list[str], batch_size: int = ...) -> np.ndarray: ...


@dataclass
class Searcher:
    encoder: SentenceTransformer | QueryEncoder
    index: ItemIndex

    def encode(self, queries: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not isinstance(self.encoder, SentenceTransformer):
            return np.asarray(self.encoder.encode(list(queries), batch_size=batch_size), dtype=np.float32)
        return encode(self.encoder, queries, batch_size=batch_size, role="query")  # with its query prompt, if any

    def search(
        self, queries: Sequence[str], k: int = 10, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` item ids and scores for each query (optionally among ``allowed_rows`` only)."""
        return self.index.search(self.encode(queries), k, allowed_rows=allowed_rows)

    def search_one(self, query: str, k: int = 10) -> list[str]:
        return self.search([query], k)[0][0]

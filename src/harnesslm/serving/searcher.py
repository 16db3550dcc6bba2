"""Encode a query and search the item index: the online path, and what end-to-end latency measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sentence_transformers import SentenceTransformer

from harnesslm.index.item_index import ItemIndex


@dataclass
class Searcher:
    encoder: SentenceTransformer
    index: ItemIndex

    def encode(self, queries: Sequence[str], batch_size: int = 256) -> np.ndarray:
        embeddings = self.encoder.encode(
            list(queries),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(embeddings, dtype=np.float32)

    def search(self, queries: Sequence[str], k: int = 10) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` item ids and scores for each query."""
        return self.index.search(self.encode(queries), k)

    def search_one(self, query: str, k: int = 10) -> list[str]:
        return self.search([query], k)[0][0]

"""The second stage: re-score a query's retrieved candidates with a cross-encoder and sort them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sentence_transformers.cross_encoder import CrossEncoder

from harnesslm.rerank.models import score_pairs


@dataclass
class Reranker:
    """A cross-encoder plus the item texts it reads; ``rerank`` returns ids and logits, best first."""

    model: CrossEncoder
    item_texts: Mapping[str, str]
    batch_size: int = 64

    def scores(self, query: str, item_ids: Sequence[str]) -> np.ndarray:
        texts = [self.item_texts[i] for i in item_ids]
        return score_pairs(self.model, [query] * len(texts), texts, self.batch_size).numpy()

    def rerank(self, query: str, item_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """All of ``item_ids`` sorted by the cross-encoder's score (stable for ties: retrieval order wins)."""
        if not item_ids:
            return [], np.zeros(0, dtype=np.float32)
        scores = self.scores(query, item_ids)
        order = np.argsort(-scores, kind="stable")
        return [item_ids[i] for i in order], scores[order]

    def rerank_many(self, candidates: Mapping[str, Sequence[str]], progress: bool = False) -> dict[str, list[str]]:
        """Re-rank every query's list, scoring all pairs in large batches (offline evaluation)."""
        queries = list(candidates)
        flat_q = [q for q in queries for _ in candidates[q]]
        flat_ids = [i for q in queries for i in candidates[q]]
        scores = score_pairs(
            self.model, flat_q, [self.item_texts[i] for i in flat_ids], self.batch_size, progress
        ).numpy()
        ranked, start = {}, 0
        for query in queries:
            ids = list(candidates[query])
            block = scores[start : start + len(ids)]
            start += len(ids)
            ranked[query] = [ids[i] for i in np.argsort(-block, kind="stable")]
        return ranked

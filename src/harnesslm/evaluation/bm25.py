"""BM25 lexical baseline on ``bm25s``.

BM25 (Robertson & Zaragoza, 2009) is the reference every dense encoder in a report is compared with.
``bm25s`` (Lù, 2024, https://github.com/xhluca/bm25s) precomputes the BM25 score of each (term, item) pair
in a sparse matrix, so a query costs one sparse row sum; its default "lucene" variant matches
Lucene/Elasticsearch. Text is lower-cased, split on ``\\w\\w+`` and stripped of English stop words; a
stemmer (e.g. ``Stemmer.Stemmer("english")`` from PyStemmer) is optional.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import bm25s
import numpy as np

logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its logger to DEBUG when imported

Hits = list[tuple[str, float]]
"""One query's results: (item id, BM25 score), best first."""


class BM25Retriever:
    """Ranks item texts against free-text queries with BM25.

    Build it with :meth:`fit`. Only items sharing at least one term with the query are returned, so a
    result can hold fewer than ``k`` hits, and a query made only of stop words or unknown terms gets none.
    Equal scores keep corpus order, which makes rankings deterministic. ``stemmer`` is anything bm25s
    accepts: an object with ``stemWords`` (PyStemmer) or a callable mapping a list of words to their stems.
    """

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | Sequence[str] = "english",
        stemmer: object | None = None,
    ) -> None:
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        if len(ids) == 0:
            raise ValueError("cannot index an empty corpus")
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        self.ids: list[str] = list(ids)
        self._stopwords = stopwords if isinstance(stopwords, str) else list(stopwords)
        self._stemmer = stemmer
        corpus_tokens = self._tokenize(texts)
        if not any(corpus_tokens):
            raise ValueError("no item text has an indexable term (all empty, stop words or 1-letter)")
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        self._bm25.index(corpus_tokens, show_progress=False)

    @classmethod
    def fit(
        cls,
        ids: Sequence[str],
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | Sequence[str] = "english",
        stemmer: object | None = None,
    ) -> BM25Retriever:
        """Index ``texts``, aligned with unique ``ids``, with BM25 parameters ``k1`` and ``b``."""
        return cls(ids, texts, k1=k1, b=b, stopwords=stopwords, stemmer=stemmer)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        """Top-``k`` (item id, score) hits per query, best first; ``k`` larger than the corpus is fine."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return [self._search_tokens(tokens, k) for tokens in self._tokenize(queries)]

    def search_ids(self, queries: Sequence[str], k: int) -> list[list[str]]:
        """Like :meth:`search`, item ids only (the input of ``evaluate_rankings``)."""
        return [[item for item, _ in hits] for hits in self.search(queries, k)]

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        return bm25s.tokenize(
            list(texts),
            lower=True,
            stopwords=self._stopwords,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def _search_tokens(self, tokens: list[str], k: int) -> Hits:
        # bm25s adds an empty token "" to the vocabulary; it, and unknown terms, must not reach get_scores.
        known = [token for token in tokens if token and token in self._bm25.vocab_dict]
        if not known:
            return []
        scores = np.asarray(self._bm25.get_scores(known))
        top = _top_k(scores, k)
        return [(self.ids[i], float(scores[i])) for i in top]


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best positive scores, descending; ties keep index order."""
    candidates = np.flatnonzero(scores > 0)
    if len(candidates) > k:
        kth_best = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[scores[candidates] >= kth_best]
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order[:k]]

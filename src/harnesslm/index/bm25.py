"""The lexical item index: BM25 on ``bm25s``, the baseline of every report and the other half of a hybrid.

BM25 (Robertson & Zaragoza, 2009) is the reference every dense encoder in a report is compared with, and
what product search fuses the dense ranking with (``harnesslm.index.fusion``).
``bm25s`` (Lù, 2024, https://github.com/xhluca/bm25s) precomputes the BM25 score of each (term, item) pair
in a sparse matrix, so a query costs one sparse row sum; its default "lucene" variant matches
Lucene/Elasticsearch. Text is lower-cased, split on ``\\w\\w+`` and stripped of English stop words; a
stemmer (e.g. ``Stemmer.Stemmer("english")`` from PyStemmer) is optional.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from harnesslm.atomic import atomic_directory

logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its logger to DEBUG when imported

META = "harness_bm25.json"
"""Beside bm25s's own files in a saved index: the item ids in row order and the tokenizer settings."""

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
        self._row_of = {item: row for row, item in enumerate(self.ids)}

    def save(self, directory: Path) -> None:
        """bm25s's score matrix and vocabulary plus the ids, written to a temporary folder renamed in place."""
        if self._stemmer is not None:
            raise ValueError("a BM25 index with a custom stemmer cannot be saved: its stemmer has no file form")
        with atomic_directory(Path(directory)) as tmp:
            self._bm25.save(str(tmp))
            meta = {"ids": self.ids, "stopwords": self._stopwords}
            (tmp / META).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> BM25Retriever:
        """A BM25 index written by :meth:`save` (no re-indexing: the score matrix is read as it is)."""
        directory = Path(directory)
        if not (directory / META).exists():
            raise FileNotFoundError(f"no BM25 index in {directory} (no {META})")
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        self = cls.__new__(cls)
        self.ids = list(meta["ids"])
        self._stopwords = meta["stopwords"]
        self._stemmer = None
        self._bm25 = bm25s.BM25.load(str(directory))
        self._row_of = {item: row for row, item in enumerate(self.ids)}
        return self

    def rows_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """The rows of ``item_ids`` in this index (to map another index's row numbers onto this one's)."""
        return np.fromiter((self._row_of[item] for item in item_ids), dtype=np.int64, count=len(item_ids))

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

    def search(self, queries: Sequence[str], k: int, allowed_rows: np.ndarray | None = None) -> list[Hits]:
        """Top-``k`` (item id, score) hits per query, best first; ``k`` larger than the corpus is fine.

        ``allowed_rows`` (rows of this index, see :meth:`rows_of`) keeps only those items: a filtered search.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return [self._search_tokens(tokens, k, allowed_rows) for tokens in self._tokenize(queries)]

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

    def _search_tokens(self, tokens: list[str], k: int, allowed_rows: np.ndarray | None) -> Hits:
        # bm25s adds an empty token "" to the vocabulary; it, and unknown terms, must not reach get_scores.
        known = [token for token in tokens if token and token in self._bm25.vocab_dict]
        if not known:
            return []
        scores = np.asarray(self._bm25.get_scores(known))
        if allowed_rows is not None:
            kept = np.zeros_like(scores)
            kept[allowed_rows] = scores[allowed_rows]
            scores = kept
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

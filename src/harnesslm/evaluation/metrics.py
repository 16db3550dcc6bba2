"""Ranking quality metrics (NDCG, Recall, Precision, MRR) on graded labels.

The numbers follow ``trec_eval`` (https://github.com/usnistgov/trec_eval) as exposed by ``pytrec_eval``
(Van Gysel & de Rijke, SIGIR 2018), so they can be compared with published results:

* ``ndcg@k`` is trec_eval's ``ndcg_cut_k``: linear gain, ``DCG = sum(gain_i / log2(i + 1))`` over ranks
  ``i = 1..k``; the ideal DCG sorts *all* judged gains of the query (retrieved or not). A query whose gains
  are all 0 scores 0.
* ``recall@k`` is ``recall_k``: relevant items in the top k / relevant items in the qrels (0 when the
  query has none).
* ``p@k`` is ``P_k``: relevant items in the top k / k (a short ranking is not rescaled).
* ``mrr@k`` is ``recip_rank`` computed on the ranking cut to its first k items: 1 / rank of the first
  relevant item, 0 when none is in the top k.

Averages run over every query of the qrels, like ``trec_eval -c``: a query missing from the rankings and
a query without any relevant item both count, with 0 for the binary metrics. Per-query values equal what
``pytrec_eval.RelevanceEvaluator`` returns for queries present in both the run and the qrels. A ranking is
an ordered list of item ids; a repeated id keeps only its first position (a trec_eval run, keyed by
docid, cannot hold duplicates either).

We compute the metrics ourselves instead of calling ``ranx`` at run time: ranx pulls in numba/llvmlite
(a large install plus JIT compilation on first use) for what is a few vectorised numpy lines here, and
neither ranx nor trec_eval take the fractional, offset labels of datasets such as Home Depot's averaged
1..3 grades. ``tests/test_metrics.py`` checks these functions against ``pytrec_eval``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Qrels = dict[str, dict[str, float]]
"""Query id -> item id -> relevance label on the dataset's own scale (e.g. 1..3 averaged human grades)."""


@dataclass(frozen=True)
class RelevanceScale:
    """How a dataset's labels turn into NDCG gains and binary relevance.

    ``gain = max(label - label_offset, 0)`` (graded, for NDCG); an item is *relevant* (Recall, Precision,
    MRR) when ``label >= relevant_at``. Unjudged items have gain 0 and are not relevant. The defaults suit
    Home Depot's 1..3 scale: 1 ("irrelevant") gives gain 0, and 2.33 and up counts as relevant.
    """

    label_offset: float = 1.0
    relevant_at: float = 2.33

    def gains(self, labels: np.ndarray) -> np.ndarray:
        """NDCG gains for an array of labels (``-inf`` marks unjudged items, which get 0)."""
        return np.maximum(labels - self.label_offset, 0.0)

    def is_relevant(self, labels: np.ndarray) -> np.ndarray:
        """Boolean mask of labels that count as relevant."""
        return labels >= self.relevant_at

    def max_gain(self, labels: Sequence[float] | np.ndarray) -> float:
        """The largest gain among ``labels`` (Home Depot: grade 3 gives 2): the top of the soft-target scale."""
        return float(self.gains(np.asarray(labels, dtype=np.float64)).max())


@dataclass(frozen=True)
class MetricReport:
    """Mean metrics over the qrels' queries, plus every query's values.

    ``means`` and each ``per_query[qid]`` share the keys ``ndcg@K``, ``recall@K``, ``p@K``, ``mrr@K``
    (with the k values asked for), in that order.
    """

    means: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(repr=False)
    n_queries: int


def evaluate_rankings(
    rankings: Mapping[str, Sequence[str]],
    qrels: Qrels,
    scale: RelevanceScale = RelevanceScale(),
    ndcg_k: int = 10,
    recall_k: int = 100,
    precision_k: int = 10,
    mrr_k: int = 10,
) -> MetricReport:
    """Score ranked item ids against graded qrels with trec_eval's conventions (see the module docstring).

    ``rankings`` maps query id -> item ids, best first; only the queries of ``qrels`` are scored, and one
    absent from ``rankings`` gets 0 everywhere. Items beyond the largest cutoff are ignored.
    """
    cutoffs = {"ndcg": ndcg_k, "recall": recall_k, "p": precision_k, "mrr": mrr_k}
    if any(k < 1 for k in cutoffs.values()):
        raise ValueError(f"cutoffs must be >= 1, got {cutoffs}")
    qids = list(qrels)
    depth = max(cutoffs.values())
    labels = _label_matrix(qids, rankings, qrels, depth)
    gains = scale.gains(labels)
    relevant = scale.is_relevant(labels)

    columns = {
        f"ndcg@{ndcg_k}": _ndcg(gains, _ideal_gains(qids, qrels, scale, ndcg_k), ndcg_k),
        f"recall@{recall_k}": _recall(relevant, _n_relevant(qids, qrels, scale), recall_k),
        f"p@{precision_k}": relevant[:, :precision_k].sum(axis=1) / precision_k,
        f"mrr@{mrr_k}": _reciprocal_rank(relevant, mrr_k),
    }
    means = {name: float(values.mean()) if qids else math.nan for name, values in columns.items()}
    per_query_columns = {name: values.tolist() for name, values in columns.items()}
    per_query = {qid: {name: values[row] for name, values in per_query_columns.items()} for row, qid in enumerate(qids)}
    return MetricReport(means=means, per_query=per_query, n_queries=len(qids))


def recovery(student: float, teacher: float) -> float:
    """Share of the teacher's score kept by the student, in percent (nan when the teacher scores 0)."""
    if teacher == 0:
        return math.nan
    return 100.0 * student / teacher


def _label_matrix(qids: Sequence[str], rankings: Mapping[str, Sequence[str]], qrels: Qrels, depth: int) -> np.ndarray:
    """Labels of the top ``depth`` ranked items per query; ``-inf`` for unjudged items and padding."""
    labels = np.full((len(qids), depth), -np.inf)
    for row, qid in enumerate(qids):
        ranked = _dedupe(rankings.get(qid, ()), depth)
        judged = qrels[qid]
        labels[row, : len(ranked)] = [judged.get(item, -np.inf) for item in ranked]
    return labels


def _dedupe(ranking: Sequence[str], depth: int) -> list[str]:
    """First ``depth`` distinct ids of a ranking, keeping first occurrences."""
    seen = dict.fromkeys(ranking[:depth])
    if len(seen) < min(depth, len(ranking)):
        seen = dict.fromkeys(ranking)
    return list(seen)[:depth]


def _discounts(k: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def _ideal_gains(qids: Sequence[str], qrels: Qrels, scale: RelevanceScale, k: int) -> np.ndarray:
    """Each query's k largest judged gains, descending, zero-padded: the ideal ranking for NDCG."""
    ideal = np.zeros((len(qids), k))
    for row, qid in enumerate(qids):
        gains = scale.gains(np.fromiter(qrels[qid].values(), dtype=float, count=len(qrels[qid])))
        top = -np.sort(-gains)[:k]
        ideal[row, : len(top)] = top
    return ideal


def _n_relevant(qids: Sequence[str], qrels: Qrels, scale: RelevanceScale) -> np.ndarray:
    """Number of relevant judged items per query."""
    return np.array([sum(label >= scale.relevant_at for label in qrels[qid].values()) for qid in qids], dtype=float)


def _ndcg(gains: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """Linear-gain NDCG@k; 0 where the ideal DCG is 0."""
    discounts = _discounts(k)
    dcg = gains[:, :k] @ discounts
    idcg = ideal @ discounts
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def _recall(relevant: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant items in the top k over all relevant items; 0 for queries without any."""
    hits = relevant[:, :k].sum(axis=1).astype(float)
    return np.divide(hits, n_relevant, out=np.zeros_like(hits), where=n_relevant > 0)


def _reciprocal_rank(relevant: np.ndarray, k: int) -> np.ndarray:
    """1 / rank of the first relevant item in the top k, else 0."""
    top = relevant[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def qrels_from_judgments(queries: Sequence[str], items: Sequence[str], labels: Sequence[float]) -> Qrels:
    """Qrels from parallel columns of a judgments table (one row per judged query–item pair)."""
    qrels: Qrels = {}
    for query, item, label in zip(queries, items, labels, strict=True):
        qrels.setdefault(query, {})[item] = float(label)
    return qrels

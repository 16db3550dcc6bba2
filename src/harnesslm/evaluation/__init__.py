"""Retrieval quality metrics, the BM25 baseline and latency measurement.

Submodules: :mod:`~harnesslm.evaluation.metrics` (NDCG, Recall, Precision, MRR, checked against
``trec_eval``), :mod:`~harnesslm.evaluation.bm25` (lexical baseline on ``bm25s``),
:mod:`~harnesslm.evaluation.latency` (batch-1 latency percentiles, throughput, thread settings), and the proof
that a student keeps its teacher's quality: :mod:`~harnesslm.evaluation.bootstrap` (paired bootstrap
confidence intervals over queries) and :mod:`~harnesslm.evaluation.agreement` (top-k overlap, embedding
cosine).
"""

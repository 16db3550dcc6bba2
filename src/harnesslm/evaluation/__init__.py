"""Retrieval quality metrics, the BM25 baseline and latency measurement.

Submodules: :mod:`~harnesslm.evaluation.metrics` (NDCG, Recall, Precision, MRR, checked against
``trec_eval``), :mod:`~harnesslm.evaluation.bm25` (lexical baseline on ``bm25s``) and
:mod:`~harnesslm.evaluation.latency` (batch-1 latency percentiles, throughput, thread settings).
"""

"""Retrieval quality metrics, fusion weights and latency measurement (the BM25 index is ``harnesslm.index.bm25``).

Submodules: :mod:`~harnesslm.evaluation.metrics` (NDCG, Recall, Precision, MRR, checked against
``trec_eval``), :mod:`~harnesslm.evaluation.fusion_weight` (the hybrid's dense weight, chosen on validation),
:mod:`~harnesslm.evaluation.latency` (batch-1 latency percentiles, throughput, thread settings), and the proof
that a student keeps its teacher's quality: :mod:`~harnesslm.evaluation.bootstrap` (paired bootstrap
confidence intervals over queries) and :mod:`~harnesslm.evaluation.agreement` (top-k overlap, embedding
cosine).
"""

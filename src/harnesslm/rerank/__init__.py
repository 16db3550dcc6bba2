"""Re-ranking, beside retrieval: a cross-encoder relevance teacher trained on soft labels, teacher labels for
pairs no human judged, and what is distilled from them (a small cross-encoder re-ranker, or the bi-encoder
student itself) with margin-MSE or listwise losses.

``models`` (cross-encoders), ``losses`` (ranking losses by name), ``datasets``, ``relevance_teacher``,
``labelling``, ``distill_rankers``, and ``reranker`` (the second stage that re-scores retrieved candidates; the
service does not re-rank yet). The step that runs it on a run directory is ``harnesslm.pipeline.relevance``.
"""

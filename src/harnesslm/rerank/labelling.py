"""The teacher labels what no human judged: the retriever's top candidates for training and unlabeled queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder

from harnesslm.rerank.datasets import Candidates
from harnesslm.rerank.models import score_pairs


def augmentation_pairs(
    judgments: pd.DataFrame,
    candidates: Candidates,
    augmented_queries: Sequence[str],
    augment_k: int,
    never: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The (query, item_id, judged) pairs the teacher will label.

    Every judged pair in ``judgments`` (the students' human labels), plus, for each query in
    ``augmented_queries`` (training queries or unlabeled ones), its first ``augment_k`` retrieved items that no
    human judged, in ``judgments`` or in ``never`` (human judgments kept from the students, e.g. the training
    queries beyond the students' share: such pairs are neither given to them nor passed off as unjudged).
    """
    frames = [judgments[["query", "item_id"]].assign(judged=True)]
    humans = judgments if never is None else pd.concat([judgments, never], ignore_index=True)
    judged = humans.groupby("query")["item_id"].agg(set).to_dict()
    extra_q, extra_i = [], []
    for query in augmented_queries:
        seen = judged.get(query, set())
        fresh = [i for i in candidates.get(query, ()) if i not in seen][:augment_k]
        extra_q += [query] * len(fresh)
        extra_i += fresh
    frames.append(pd.DataFrame({"query": extra_q, "item_id": extra_i, "judged": False}))
    pairs = pd.concat(frames, ignore_index=True)
    return pairs.drop_duplicates(["query", "item_id"]).reset_index(drop=True)


def label_pairs(
    teacher: CrossEncoder,
    pairs: pd.DataFrame,
    item_texts: Mapping[str, str],
    batch_size: int = 64,
    progress: bool = True,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``pairs`` plus ``teacher_score``: the teacher's raw logit for each (query, item).

    ``known``: earlier labels by the same teacher (``query``, ``item_id``, ``teacher_score``); their pairs are
    not scored again, so growing the augmented data only costs the new pairs.
    """
    scores = np.full(len(pairs), np.nan)
    if known is not None and len(known):
        earlier = known.drop_duplicates(["query", "item_id"]).set_index(["query", "item_id"])["teacher_score"]
        keys = pd.MultiIndex.from_frame(pairs[["query", "item_id"]])
        scores = np.array(earlier.reindex(keys), dtype=np.float64)  # a writable copy
    todo = np.flatnonzero(np.isnan(scores))
    if len(todo):
        texts = [item_texts[pairs["item_id"].iloc[i]] for i in todo]
        queries = pairs["query"].iloc[todo].tolist()
        scores[todo] = score_pairs(teacher, queries, texts, batch_size, progress).numpy()
    return pairs.assign(teacher_score=scores.astype(np.float32))

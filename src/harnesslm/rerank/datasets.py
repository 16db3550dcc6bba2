"""What a re-ranker (or the bi-encoder student) learns the relevance teacher's scores from: soft targets for
the teacher itself, then sampled lists of teacher-scored candidates, as lists or as margin pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from datasets import Dataset

from harnesslm.evaluation.metrics import RelevanceScale
from harnesslm.rerank.losses import takes_pairs

Candidates = Mapping[str, Sequence[str]]
"""Query -> the retriever's item ids, best first."""


def soft_targets(labels: np.ndarray, scale: RelevanceScale, max_gain: float) -> np.ndarray:
    """Graded labels as probabilities: the NDCG gain over the largest gain (HD: 1 -> 0, 2 -> 0.5, 3 -> 1).

    Averaged rater grades (2.33, 2.67) keep their fraction instead of being rounded into a class, which is the
    point of soft targets: the teacher learns how sure the raters were.
    """
    if max_gain <= 0:
        raise ValueError("the judgments have no positive gain: nothing to learn relevance from")
    return np.clip(scale.gains(np.asarray(labels, dtype=np.float64)) / max_gain, 0.0, 1.0)


def teacher_training_pairs(
    judgments: pd.DataFrame,
    candidates: Candidates,
    item_texts: Mapping[str, str],
    scale: RelevanceScale,
    negatives: int,
    seed: int = 0,
) -> Dataset:
    """(query, text, label) rows: every judged pair with its soft target, plus ``negatives`` unjudged items per
    query drawn from its retrieved candidates with target 0 (the confusions a re-ranker must fix)."""
    max_gain = scale.max_gain(judgments["label"])
    targets = soft_targets(judgments["label"].to_numpy(), scale, max_gain)
    rows = {
        "query": judgments["query"].tolist(),
        "text": [item_texts[i] for i in judgments["item_id"]],
        "label": targets.tolist(),
    }
    rng = np.random.default_rng(seed)
    judged = judgments.groupby("query")["item_id"].agg(set).to_dict()
    for query, seen in judged.items():
        pool = [i for i in candidates.get(query, ()) if i not in seen]
        if not pool or negatives == 0:
            continue
        for item in rng.choice(pool, size=min(negatives, len(pool)), replace=False):
            rows["query"].append(query)
            rows["text"].append(item_texts[item])
            rows["label"].append(0.0)
    return Dataset.from_dict(rows)


def teacher_grades(scores: np.ndarray, max_gain: float) -> np.ndarray:
    """Teacher logits back on the gain scale (``max_gain * sigmoid``), the labels listwise losses expect:
    gains ``2**g - 1`` in LambdaLoss/approxNDCG need non-negative grades, not raw logits."""
    return max_gain / (1.0 + np.exp(-np.asarray(scores, dtype=np.float64)))


def query_lists(labelled: pd.DataFrame) -> list[tuple[str, list[str], np.ndarray]]:
    """(query, item ids, standardised teacher scores) for every query with at least two labelled items.

    Scores are z-scored over all labelled pairs (a monotone map: the teacher's order and relative margins are
    kept). A teacher trained on soft targets gives logits in a narrow band (about one unit on Home Depot);
    regressing raw margins of that size gives a student almost no gradient, and it stays near constant.
    """
    scores = labelled["teacher_score"].to_numpy(dtype=np.float64)
    spread = scores.std() or 1.0
    z = (scores - scores.mean()) / spread
    labelled = labelled.assign(_z=z)
    lists = []
    for query, group in labelled.groupby("query", sort=True):
        if len(group) >= 2:
            lists.append((query, group["item_id"].tolist(), group["_z"].to_numpy()))
    return lists


def sample_lists(
    lists: list[tuple[str, list[str], np.ndarray]], list_size: int, n: int, seed: int
) -> list[tuple[str, list[str], np.ndarray]]:
    """``n`` training examples: queries in shuffled rounds, each a random subset of up to ``list_size`` items."""
    if not lists:
        raise ValueError("no query has two or more teacher-labelled items to learn an order from")
    rng = np.random.default_rng(seed)
    examples = []
    while len(examples) < n:
        for index in rng.permutation(len(lists)):
            query, ids, scores = lists[index]
            pick = rng.choice(len(ids), size=min(list_size, len(ids)), replace=False)
            examples.append((query, [ids[i] for i in pick], scores[pick]))
            if len(examples) == n:
                break
    return examples


def margin_pairs(examples: Sequence[tuple[str, list[str], np.ndarray]]) -> list[tuple[str, str, str, float]]:
    """(query, item a, item b, teacher margin a - b) from each sampled list, ``len(list) // 2`` disjoint pairs
    per list, so a pairwise loss sees as many (query, item) forward passes as a listwise one."""
    return [
        (query, ids[a], ids[a + 1], float(scores[a] - scores[a + 1]))
        for query, ids, scores in examples
        for a in range(0, len(ids) - 1, 2)
    ]


def reranker_dataset(
    labelled: pd.DataFrame,
    item_texts: Mapping[str, str],
    loss_name: str,
    list_size: int,
    n_lists: int,
    max_gain: float,
    seed: int = 0,
) -> Dataset:
    """Training rows for a cross-encoder student, ``n_lists`` lists of ``list_size`` items' worth.

    * ``margin_mse``: (query, positive, negative, label) triples, label = teacher logit margin; each list gives
      ``list_size // 2`` disjoint pairs, so every loss sees the same number of (query, item) forward passes.
    * listwise/pairwise losses: (query, docs, labels) with teacher grades on the gain scale.
    """
    examples = sample_lists(query_lists(labelled), list_size, n_lists, seed)
    if takes_pairs(loss_name):
        pairs = margin_pairs(examples)
        return Dataset.from_dict(
            {
                "query": [q for q, _, _, _ in pairs],
                "positive": [item_texts[a] for _, a, _, _ in pairs],
                "negative": [item_texts[b] for _, _, b, _ in pairs],
                "label": [m for _, _, _, m in pairs],
            }
        )
    return Dataset.from_dict(
        {
            "query": [q for q, _, _ in examples],
            "docs": [[item_texts[i] for i in ids] for _, ids, _ in examples],
            "labels": [teacher_grades(s, max_gain).tolist() for _, _, s in examples],
        }
    )


def bi_encoder_dataset(
    labelled: pd.DataFrame,
    item_rows: Mapping[str, int],
    loss_name: str,
    list_size: int,
    n_lists: int,
    max_gain: float,
    seed: int = 0,
) -> Dataset:
    """Training rows for the bi-encoder student against frozen teacher item embeddings (rows, not texts):
    margin triples for ``margin_mse``, padded lists with teacher grades for the listwise/pairwise losses."""
    from harnesslm.losses.frozen_item_listwise import listwise_dataset
    from harnesslm.losses.frozen_item_margin_mse import margin_dataset

    examples = sample_lists(query_lists(labelled), list_size, n_lists, seed)
    if takes_pairs(loss_name):
        pairs = margin_pairs(examples)
        return margin_dataset(
            [q for q, _, _, _ in pairs],
            [item_rows[a] for _, a, _, _ in pairs],
            [item_rows[b] for _, _, b, _ in pairs],
            [m for _, _, _, m in pairs],
        )
    return listwise_dataset(
        [q for q, _, _ in examples],
        [[item_rows[i] for i in ids] for _, ids, _ in examples],
        [teacher_grades(s, max_gain).tolist() for _, _, s in examples],
        list_size=list_size,
    )

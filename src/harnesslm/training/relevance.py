"""The relevance teacher and what it teaches: soft-target fine-tuning, labelling unjudged candidates, and the
datasets a student re-ranker (or the bi-encoder student) learns the teacher's scores from.

Data flows one way: judgments + the retriever's candidates -> teacher training pairs -> a fine-tuned
cross-encoder -> teacher scores on (query, item) pairs no human judged -> student lists / margin triples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

from harnesslm.config import RelevanceConfig
from harnesslm.evaluation.metrics import RelevanceScale
from harnesslm.models.cross_encoders import score_pairs
from harnesslm.training.trainer import train_cross_encoder

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
    max_gain = float(scale.gains(judgments["label"].to_numpy(dtype=np.float64)).max())
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


def fine_tune_relevance_teacher(
    model: CrossEncoder, dataset: Dataset, cfg: RelevanceConfig, progress: bool = True
) -> dict[str, float]:
    """Binary cross-entropy on soft targets (``BCEWithLogits`` accepts probabilities, not only 0/1)."""
    loss = BinaryCrossEntropyLoss(model)
    return train_cross_encoder(
        model,
        dataset.shuffle(seed=cfg.seed),
        loss,
        max_steps=cfg.teacher_steps,
        batch_size=cfg.teacher_batch_size,
        learning_rate=cfg.teacher_learning_rate,
        seed=cfg.seed,
        progress=progress,
    )


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
    if loss_name == "margin_mse":
        rows: dict[str, list] = {"query": [], "positive": [], "negative": [], "label": []}
        for query, ids, scores in examples:
            for a in range(0, len(ids) - 1, 2):
                rows["query"].append(query)
                rows["positive"].append(item_texts[ids[a]])
                rows["negative"].append(item_texts[ids[a + 1]])
                rows["label"].append(float(scores[a] - scores[a + 1]))
        return Dataset.from_dict(rows)
    return Dataset.from_dict(
        {
            "query": [q for q, _, _ in examples],
            "docs": [[item_texts[i] for i in ids] for _, ids, _ in examples],
            "labels": [teacher_grades(s, max_gain).tolist() for _, _, s in examples],
        }
    )


def distill_reranker(
    student: CrossEncoder,
    labelled: pd.DataFrame,
    item_texts: Mapping[str, str],
    loss_name: str,
    cfg: RelevanceConfig,
    max_gain: float,
    progress: bool = True,
) -> dict[str, float]:
    """Train the small cross-encoder on the teacher's scores with one of the ranking losses, for
    ``student_steps`` steps of ``student_batch_size`` lists (margin-MSE: the same number of pair scores)."""
    from harnesslm.losses.cross_encoder_ranking import cross_encoder_ranking_loss

    n_lists = cfg.student_steps * cfg.student_batch_size
    dataset = reranker_dataset(labelled, item_texts, loss_name, cfg.list_size, n_lists, max_gain, cfg.seed)
    batch_size = cfg.student_batch_size
    if loss_name == "margin_mse":
        batch_size = max(1, cfg.student_batch_size * (cfg.list_size // 2))
    loss = cross_encoder_ranking_loss(loss_name, student)
    torch.manual_seed(cfg.seed)
    return train_cross_encoder(
        student,
        dataset,
        loss,
        max_steps=cfg.student_steps,
        batch_size=batch_size,
        learning_rate=cfg.student_learning_rate,
        seed=cfg.seed,
        progress=progress,
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
    if loss_name == "margin_mse":
        queries, rows_a, rows_b, margins = [], [], [], []
        for query, ids, scores in examples:
            for a in range(0, len(ids) - 1, 2):
                queries.append(query)
                rows_a.append(item_rows[ids[a]])
                rows_b.append(item_rows[ids[a + 1]])
                margins.append(float(scores[a] - scores[a + 1]))
        return margin_dataset(queries, rows_a, rows_b, margins)
    return listwise_dataset(
        [q for q, _, _ in examples],
        [[item_rows[i] for i in ids] for _, ids, _ in examples],
        [teacher_grades(s, max_gain).tolist() for _, _, s in examples],
        list_size=list_size,
    )


def distill_bi_encoder(
    student,
    labelled: pd.DataFrame,
    item_rows: Mapping[str, int],
    item_embeddings: np.ndarray,
    loss_name: str,
    cfg: RelevanceConfig,
    max_gain: float,
    score_scale: float,
    progress: bool = True,
) -> dict[str, float]:
    """Teach the bi-encoder student the cross-encoder's ranking of each query's candidates, so retrieval
    itself improves; item embeddings stay the teacher's (nothing is re-indexed).

    ``score_scale`` (the refinement's ``1 / temperature``) puts the student's cosines in the units of the
    teacher's logits for margin-MSE and is the listwise losses' inverse temperature.
    """
    from harnesslm.losses.cross_encoder_ranking import bi_encoder_ranking_loss
    from harnesslm.training.trainer import train

    n_lists = cfg.bi_encoder_steps * cfg.student_batch_size
    dataset = bi_encoder_dataset(labelled, item_rows, loss_name, cfg.list_size, n_lists, max_gain, cfg.seed)
    items = torch.from_numpy(np.ascontiguousarray(item_embeddings, dtype=np.float32))
    options = {"scale": score_scale} if loss_name == "margin_mse" else {"temperature": 1.0 / score_scale}
    loss = bi_encoder_ranking_loss(loss_name, student, items, **options)
    batch_size = cfg.student_batch_size * (cfg.list_size // 2 if loss_name == "margin_mse" else 1)
    return train(
        student,
        dataset,
        loss,
        max_steps=cfg.bi_encoder_steps,
        batch_size=batch_size,
        learning_rate=cfg.bi_encoder_learning_rate,
        seed=cfg.seed,
        no_duplicates=False,
        progress=progress,
    )

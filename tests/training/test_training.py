"""The three training phases on tiny models: negative mining, datasets, alignment, refinement, fine-tuning."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding
from transformers import TrainerCallback

from harnesslm.config import Schedule, StaticStudentConfig, TeacherConfig
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.bm25 import BM25Retriever
from harnesslm.index.item_index import ItemIndex
from harnesslm.losses import FrozenItemContrastiveLoss
from harnesslm.losses.graph_regularized import item_neighbors
from harnesslm.models.fingerprint import model_fingerprint
from harnesslm.models.model_loading import load_model
from harnesslm.students import table_rows
from harnesslm.students.heads import projection_of
from harnesslm.students.static import static_model, static_student
from harnesslm.training.alignment import align_student, fit_projection
from harnesslm.training.negatives import mine_lexical_negatives, mine_negatives
from harnesslm.training.refinement import refine_student, refinement_dataset
from harnesslm.training.selection import KeepBest, ValidationScorer, evaluation_interval
from harnesslm.training.teacher_finetune import contrastive_dataset, fine_tune_teacher, positive_pairs, teacher_loss


# mine_negatives --------------------------------------------------------------------------------------------
def _circle_index(n: int = 40) -> tuple[ItemIndex, list[str], np.ndarray]:
    """Items on the unit circle at angles 0, 0.05, 0.1, ...: a query at angle 0 ranks them i00, i01, i02, ..."""
    ids = [f"i{i:02d}" for i in range(n)]
    angles = 0.05 * np.arange(n)
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    # q0 at the first item's angle (ranks i00, i01, ...), q1 at the last one's (ranks i39, i38, ...)
    queries = np.stack([vectors[0], vectors[-1]])
    return ItemIndex.build(vectors, ids, space="fp"), ids, queries


def test_mine_negatives_respects_ranks_and_exclusions() -> None:
    index, _, queries = _circle_index()
    exclude = {"q0": {"i04", "i05", "i06"}, "q1": {"i38"}}
    negatives = mine_negatives(["q0", "q1"], queries, index, exclude, n=3, from_rank=3, to_rank=10)
    assert len(negatives) == 2
    for query, negs, allowed in [
        ("q0", negatives[0], {"i03", "i07", "i08", "i09"}),  # ranks 3..9 of q0 minus its positives
        ("q1", negatives[1], {"i36", "i35", "i34", "i33", "i32", "i31", "i30"}),
    ]:
        assert len(negs) == 3 and len(set(negs)) == 3
        assert set(negs) <= allowed, (query, negs)
        assert not set(negs) & exclude[query]


def test_mine_negatives_falls_back_to_top_ranks_but_never_to_positives() -> None:
    index, _, queries = _circle_index()
    exclude = {"q0": {"i00", "i03"}}
    # ranks [3, 5) hold i03 (excluded) and i04: too few, so the top ranks i01, i02 (not i00) are added
    (negs,) = mine_negatives(["q0"], queries[:1], index, exclude, n=3, from_rank=3, to_rank=5)
    assert sorted(negs) == ["i01", "i02", "i04"]
    # every candidate excluded: fewer than n (here none) rather than a positive
    everything = {"q0": {f"i{i:02d}" for i in range(10)}}
    (negs,) = mine_negatives(["q0"], queries[:1], index, everything, n=2, from_rank=3, to_rank=10)
    assert negs == []


def test_mine_negatives_is_seeded() -> None:
    index, _, queries = _circle_index()
    names = [f"q{i}" for i in range(20)]
    many = np.repeat(queries[:1], 20, axis=0)
    first = mine_negatives(names, many, index, {}, n=2, from_rank=2, to_rank=20, seed=7)
    again = mine_negatives(names, many, index, {}, n=2, from_rank=2, to_rank=20, seed=7)
    other = mine_negatives(names, many, index, {}, n=2, from_rank=2, to_rank=20, seed=8)
    assert first == again
    assert first != other
    assert len({tuple(negs) for negs in first}) > 1  # the 20 identical queries do not all get the same draw


def _drill_catalog() -> BM25Retriever:
    """Items whose BM25 rank for "cordless drill" is known: more shared terms and shorter texts rank higher."""
    texts = [
        "cordless drill",  # d0
        "cordless drill kit",  # d1
        "cordless drill with two batteries",  # d2
        "drill bit set",  # d3
        "cordless saw",  # d4
        "hammer drill bits for masonry",  # d5
        "garden hose",  # h0
        "paint roller",  # h1
        "door hinge",  # h2
    ]
    ids = ["d0", "d1", "d2", "d3", "d4", "d5", "h0", "h1", "h2"]
    return BM25Retriever.fit(ids, texts)


def test_lexical_negatives_come_from_bm25_ranks_never_positives() -> None:
    bm25 = _drill_catalog()
    ranked = bm25.search_ids(["cordless drill"], 10)[0]
    (negs,), topped_up = mine_lexical_negatives(["cordless drill"], bm25, {"cordless drill": {"d1"}}, 2, from_rank=2)
    assert topped_up == 0 and len(negs) == 2 and len(set(negs)) == 2
    assert set(negs) <= set(ranked[2:]) - {"d1"}
    assert not set(negs) & {"h0", "h1", "h2"}, "items sharing no term are never BM25 candidates"
    again, _ = mine_lexical_negatives(["cordless drill"], bm25, {"cordless drill": {"d1"}}, 2, from_rank=2)
    assert again == [negs], "seeded"


def test_lexical_negatives_top_up_queries_bm25_cannot_rank() -> None:
    bm25 = _drill_catalog()
    queries = ["ドリル", "the of and", "cordless drill"]  # unknown script, stop words only, a normal query
    exclude = {"ドリル": {"d0", "d1"}}
    negatives, topped_up = mine_lexical_negatives(queries, bm25, exclude, 3, from_rank=1)
    assert topped_up == 2
    assert all(len(negs) == 3 and len(set(negs)) == 3 for negs in negatives), "no training row is lost"
    assert not set(negatives[0]) & exclude["ドリル"]
    assert mine_lexical_negatives(queries, bm25, {}, 0) == ([[], [], []], 0)


def test_mine_negatives_zero_gives_empty_lists() -> None:
    index, _, queries = _circle_index()
    assert mine_negatives(["q0", "q1"], queries, index, {}, n=0) == [[], []]


# datasets --------------------------------------------------------------------------------------------------
def test_positive_pairs_keeps_labels_at_or_above_threshold() -> None:
    judgments = pd.DataFrame(
        {
            "query": ["a", "a", "a", "b", "b", "c"],
            "item_id": ["1", "2", "3", "1", "4", "5"],
            "label": [3.0, 2.33, 2.0, 2.67, 1.0, 1.67],
        }
    )
    pairs = positive_pairs(judgments, relevant_at=2.33)
    assert list(zip(pairs.queries, pairs.positives, strict=True)) == [("a", "1"), ("a", "2"), ("b", "1")]
    assert pairs.positives_by_query == {"a": {"1", "2"}, "b": {"1"}}
    assert positive_pairs(judgments, relevant_at=3.5).queries == []


def test_contrastive_dataset_columns_and_dropped_rows() -> None:
    texts = {"p1": "wire", "p2": "pipe", "n1": "paint", "n2": "drill", "n3": "lamp"}
    dataset = contrastive_dataset(
        ["q1", "q2", "q3"],
        ["p1", "p2", "p1"],
        [["n1", "n2", "n3"], ["n3"], ["n2", "n1"]],  # q2 has one negative: dropped
        texts,
        n_negatives=2,
    )
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert dataset.to_dict() == {
        "anchor": ["q1", "q3"],
        "positive": ["wire", "wire"],
        "negative_1": ["paint", "drill"],
        "negative_2": ["drill", "paint"],
    }


def test_refinement_dataset_rows_point_into_matrices() -> None:
    dataset = refinement_dataset(
        ["q1", "q2", "q1"],
        ["p1", "p2", "p2"],
        [["n1", "n2"], ["n1"], ["n2", "n1", "p1"]],
        query_rows={"q1": 0, "q2": 1},
        item_rows={"p1": 10, "p2": 11, "n1": 12, "n2": 13},
        n_negatives=2,
    )
    assert dataset.column_names == ["query", "label"]
    assert dataset["query"] == ["q1", "q1"]
    assert dataset["label"] == [[0, 10, 12, 13], [0, 11, 13, 12]]


# shared tiny setup -----------------------------------------------------------------------------------------
@dataclass
class Shop:
    teacher_path: Path
    tokenizer: object
    item_ids: list[str]
    item_texts: dict[str, str]
    items: np.ndarray  # teacher item embeddings
    pairs: object
    queries: list[str]  # distinct judged queries
    targets: np.ndarray  # teacher query embeddings
    pool: list[str]  # judged + unlabeled queries
    pool_targets: np.ndarray
    index: ItemIndex


@pytest.fixture(scope="module")
def shop(tiny_teacher: Path) -> Shop:
    from harnesslm.demo.shop import make_demo_shop

    demo = make_demo_shop(n_products=300, n_queries=150, n_unlabeled=100)
    teacher = load_model(str(tiny_teacher))
    item_ids = demo.catalog["product_uid"].astype(str).tolist()
    titles = demo.catalog["product_title"].tolist()
    judgments = demo.judgments.rename(columns={"search_term": "query", "product_uid": "item_id", "relevance": "label"})
    judgments["item_id"] = judgments["item_id"].astype(str)
    pairs = positive_pairs(judgments, relevant_at=2.33)
    queries = list(dict.fromkeys(pairs.queries))
    pool = [*queries, *demo.unlabeled_queries["search_term"]]
    pool_targets = encode(teacher, pool)
    items = encode(teacher, titles)
    return Shop(
        teacher_path=tiny_teacher,
        tokenizer=teacher.tokenizer,
        item_ids=item_ids,
        item_texts=dict(zip(item_ids, titles, strict=True)),
        items=items,
        pairs=pairs,
        queries=queries,
        targets=pool_targets[: len(queries)],
        pool=pool,
        pool_targets=pool_targets,
        index=ItemIndex.build(items, item_ids, space="tiny"),
    )


def _random_static(tokenizer, dim: int, seed: int = 0) -> StaticEmbedding:
    weights = torch.randn(len(tokenizer), dim, generator=torch.Generator().manual_seed(seed))
    return StaticEmbedding(tokenizer, embedding_weights=weights)


def _mse(student: SentenceTransformer, texts: list[str], targets: np.ndarray) -> float:
    return float(np.mean((encode(student, texts) - targets) ** 2))


# alignment -------------------------------------------------------------------------------------------------
def test_fit_projection_recovers_an_exact_linear_map(shop: Shop) -> None:
    table = _random_static(shop.tokenizer, dim=8)
    student = static_student(table, teacher_dim=32)
    # the static features, computed by hand: the mean of each query's token rows (no special tokens)
    weights = table.embedding.weight.detach().numpy()
    features = np.stack(
        [weights[table.tokenizer.encode(q, add_special_tokens=False).ids].mean(axis=0) for q in shop.pool]
    )
    rng = np.random.default_rng(0)
    true_map, true_bias = rng.normal(size=(32, 8)), rng.normal(size=32)
    targets = features @ true_map.T + true_bias

    mse = fit_projection(student, shop.pool, targets, ridge=1e-8)
    assert mse < 1e-8
    projection = projection_of(student)
    np.testing.assert_allclose(projection.linear.weight.detach().numpy(), true_map, atol=1e-3)
    np.testing.assert_allclose(projection.linear.bias.detach().numpy(), true_bias, atol=1e-3)
    # the student now outputs the (normalised) targets
    expected = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    np.testing.assert_allclose(encode(student, shop.pool), expected, atol=1e-4)

    # the default ridge still fits almost exactly, and a model without a projection is left alone
    assert fit_projection(static_student(_random_static(shop.tokenizer, 8), 32), shop.pool, targets) < 1e-3
    assert math.isnan(fit_projection(static_model(_random_static(shop.tokenizer, 8)), shop.pool, targets))


def test_fit_projection_lowers_mse_to_teacher(shop: Shop) -> None:
    student = static_student(_random_static(shop.tokenizer, dim=16), teacher_dim=32)
    before = _mse(student, shop.pool, shop.pool_targets)
    fit_projection(student, shop.pool, shop.pool_targets)
    assert _mse(student, shop.pool, shop.pool_targets) < 0.5 * before


def test_align_student_lowers_mse(shop: Shop, capsys, caplog) -> None:
    student = static_student(_random_static(shop.tokenizer, dim=8), teacher_dim=32)
    before = _mse(student, shop.pool, shop.pool_targets)
    config = StaticStudentConfig(name="s", align={"steps": 20, "batch_size": 32, "learning_rate": 1e-2})
    with caplog.at_level(logging.INFO, logger="harnesslm.training.trainer"):
        metrics = align_student(student, shop.pool, shop.pool_targets, config, progress=False)
    # the trainer's {'loss': ...} lines are logged (a run writes them to logs/run.log), never printed
    assert "'loss'" not in capsys.readouterr().out
    assert any("'loss'" in r.getMessage() for r in caplog.records)
    assert math.isfinite(metrics["train_loss"])
    after = _mse(student, shop.pool, shop.pool_targets)
    assert after < 0.8 * before
    assert not student.training


def test_align_student_zero_steps_is_a_no_op(shop: Shop) -> None:
    student = static_student(_random_static(shop.tokenizer, dim=8), teacher_dim=32)
    before = model_fingerprint(student)
    config = StaticStudentConfig(name="s", align={"steps": 0})
    assert align_student(student, shop.pool, shop.pool_targets, config, progress=False) == {}
    assert model_fingerprint(student) == before


# refinement ------------------------------------------------------------------------------------------------
def _refinement_data(shop: Shop, n_negatives: int = 2):
    negatives = mine_negatives(shop.queries, shop.targets, shop.index, shop.pairs.positives_by_query, n_negatives)
    by_query = dict(zip(shop.queries, negatives, strict=True))
    query_rows = {q: i for i, q in enumerate(shop.queries)}
    item_rows = {item: i for i, item in enumerate(shop.item_ids)}
    return refinement_dataset(
        shop.pairs.queries,
        shop.pairs.positives,
        [by_query[q] for q in shop.pairs.queries],
        query_rows,
        item_rows,
        n_negatives,
    )


def _positive_stats(student: SentenceTransformer, dataset, shop: Shop) -> tuple[float, float]:
    """(FrozenItemContrastiveLoss over the whole dataset as one batch, mean rank of the positive item)."""
    labels = torch.tensor(dataset["label"])
    loss = FrozenItemContrastiveLoss(student, torch.from_numpy(shop.items), temperature=0.05)
    with torch.no_grad():
        value = loss([student.preprocess(dataset["query"])], labels).item()
    scores = encode(student, dataset["query"]) @ shop.items.T
    positive = scores[np.arange(len(labels)), labels[:, 1].numpy()]
    return value, float((scores > positive[:, None]).sum(axis=1).mean())


def test_refine_student_improves_positives(shop: Shop) -> None:
    dataset = _refinement_data(shop)
    assert len(dataset) > 100
    for row in dataset["label"]:  # no negative is one of the query's positives
        query = shop.queries[row[0]]
        assert not {shop.item_ids[r] for r in row[2:]} & shop.pairs.positives_by_query[query]
    student = static_student(_random_static(shop.tokenizer, dim=16), teacher_dim=32)
    fit_projection(student, shop.queries, shop.targets)
    loss_before, rank_before = _positive_stats(student, dataset, shop)

    config = StaticStudentConfig(
        name="s", refine={"steps": 10, "batch_size": 16, "learning_rate": 1e-2, "align_weight": 0.5}
    )
    metrics = refine_student(student, dataset, shop.items, shop.targets, config, progress=False)
    assert math.isfinite(metrics["train_loss"])
    loss_after, rank_after = _positive_stats(student, dataset, shop)
    assert loss_after < loss_before
    assert rank_after < rank_before


def test_refine_student_skips_empty_work(shop: Shop) -> None:
    student = static_student(_random_static(shop.tokenizer, dim=8), teacher_dim=32)
    before = model_fingerprint(student)
    dataset = _refinement_data(shop)
    no_steps = StaticStudentConfig(name="s", refine={"steps": 0})
    assert refine_student(student, dataset, shop.items, shop.targets, no_steps, progress=False) == {}
    empty = dataset.select([])
    config = StaticStudentConfig(name="s", refine={"steps": 5})
    assert refine_student(student, empty, shop.items, shop.targets, config, progress=False) == {}
    assert model_fingerprint(student) == before


# training only the used rows of a static table -------------------------------------------------------------
def _train_both_ways(shop: Shop, monkeypatch: pytest.MonkeyPatch, run) -> tuple[dict, dict, list[str]]:
    """``run(student)`` with the full table trained, then with the used rows only; the two final states."""
    states = []
    for limit in (0.0, 1.0):  # 0: no table is small enough to compact; 1: every table is
        monkeypatch.setattr(table_rows, "USED_SHARE_LIMIT", limit)
        student = static_student(_random_static(shop.tokenizer, dim=8), teacher_dim=32)
        run(student)
        states.append({k: v.clone() for k, v in student.state_dict().items()})
    return states[0], states[1], list(states[0])


def test_training_the_used_rows_only_is_the_same_alignment(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = shop.pool[:60]
    table = _random_static(shop.tokenizer, dim=8)
    rows = table_rows.used_rows(table, texts)
    assert 0 < len(rows) < 0.5 * table.num_embeddings  # the case the compact table is for
    config = StaticStudentConfig(name="s", align={"steps": 8, "batch_size": 16, "learning_rate": 1e-2})
    full, compact, names = _train_both_ways(
        shop, monkeypatch, lambda s: align_student(s, texts, shop.pool_targets[:60], config, progress=False)
    )
    for name in names:
        torch.testing.assert_close(compact[name], full[name], atol=1e-6, rtol=1e-5)
    start = _random_static(shop.tokenizer, dim=8).embedding.weight.detach()
    table_key = next(n for n in names if n.endswith("embedding.weight"))
    unused = np.setdiff1d(np.arange(len(start)), rows)
    assert torch.equal(compact[table_key][unused], start[unused])  # never used: never moved
    assert not torch.equal(compact[table_key][rows], start[rows])


def test_training_the_used_rows_only_is_the_same_refinement(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _refinement_data(shop)
    config = StaticStudentConfig(name="s", refine={"steps": 6, "batch_size": 16, "learning_rate": 1e-2})
    full, compact, names = _train_both_ways(
        shop, monkeypatch, lambda s: refine_student(s, dataset, shop.items, shop.targets, config, progress=False)
    )
    for name in names:
        torch.testing.assert_close(compact[name], full[name], atol=1e-6, rtol=1e-5)


def test_checkpoint_selection_sees_the_trained_rows(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_rows, "USED_SHARE_LIMIT", 1.0)
    student, start, _, recorder = _align_with(shop, [0.5, 0.4, 0.7, 0.6])  # start, steps 2, 4, 6
    assert len(set(recorder.by_step.values())) == 6
    assert model_fingerprint(student) == recorder.by_step[4] != start  # the best step restored, not the last
    start_table = _random_static(shop.tokenizer, dim=8).embedding.weight
    assert not torch.equal(student[0].embedding.weight, start_table)  # the full table holds the trained rows


def test_a_transformer_student_trains_as_itself(shop: Shop) -> None:
    teacher = load_model(str(shop.teacher_path))
    with table_rows.rows_in_use(teacher, shop.pool) as (model, callbacks):
        assert model is teacher and callbacks == []


# teacher fine-tuning ---------------------------------------------------------------------------------------
def test_fine_tune_teacher_changes_weights(shop: Shop) -> None:
    pairs = shop.pairs
    negatives = mine_negatives(shop.queries, shop.targets, shop.index, pairs.positives_by_query, 1)
    by_query = dict(zip(shop.queries, negatives, strict=True))
    dataset = contrastive_dataset(
        pairs.queries, pairs.positives, [by_query[q] for q in pairs.queries], shop.item_texts, 1
    )
    assert dataset.column_names == ["anchor", "positive", "negative_1"]
    dataset = dataset.select(range(24))

    teacher = load_model(str(shop.teacher_path), max_seq_length=16)
    assert teacher.max_seq_length == 16
    before = model_fingerprint(teacher)
    config = TeacherConfig(schedule={"steps": 2, "batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0})
    steps: list[int] = []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs) -> None:
            steps.append(state.global_step)

    metrics = fine_tune_teacher(teacher, dataset, config, progress=False, callbacks=[Steps()])
    assert math.isfinite(metrics["train_loss"])
    assert steps == [1, 2], "the trainer's callbacks see every step"
    assert model_fingerprint(teacher) != before
    assert not teacher.training
    # the fixture's folder on disk is untouched
    assert model_fingerprint(load_model(str(shop.teacher_path))) == before


@pytest.mark.parametrize(
    ("options", "loss_name"),
    [
        ({"loss": "triplet"}, "TripletLoss"),
        ({"adversarial": {"method": "fgm", "epsilon": 0.5}}, "AdversarialContrastiveLoss"),
        ({"graph_regularizer": {"weight": 0.5}}, "GraphRegularizedLoss"),
        ({"loss": "triplet", "graph_regularizer": {"weight": 0.5}}, "GraphRegularizedLoss"),
        ({"ood_regularizer": {"weight": 0.5, "tokens": 4}}, "TokenInterventionLoss"),
    ],
    ids=["triplet", "fgm", "graph", "triplet-graph", "ood"],
)
def test_the_teachers_other_objectives_train_it(shop: Shop, options: dict, loss_name: str) -> None:
    pairs = shop.pairs
    negatives = mine_negatives(shop.queries, shop.targets, shop.index, pairs.positives_by_query, 2)
    by_query = dict(zip(shop.queries, negatives, strict=True))
    neighbors = item_neighbors(pairs.positives_by_query, pairs.positives) if "graph_regularizer" in options else None
    rows = contrastive_dataset(
        pairs.queries, pairs.positives, [by_query[q] for q in pairs.queries], shop.item_texts, 2, neighbors
    )
    teacher = load_model(str(shop.teacher_path), max_seq_length=16)
    before = model_fingerprint(teacher)
    schedule = {"steps": 2, "batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0}
    config = TeacherConfig(schedule=schedule, hard_negatives=2, **options)
    assert type(teacher_loss(teacher, config)).__name__ == loss_name
    metrics = fine_tune_teacher(teacher, rows.select(range(16)), config, progress=False)
    assert math.isfinite(metrics["train_loss"]) and model_fingerprint(teacher) != before
    with pytest.raises(ValueError, match="hard_negatives"):
        TeacherConfig(loss="triplet", hard_negatives=0)


def test_mine_negatives_stays_below_the_ceiling() -> None:
    index, _, queries = _circle_index()
    # q0 ranks i00 (score 1), i01 (cos 0.05), ...; a ceiling at cos(0.3) bans i00..i06 whatever their rank
    ceiling = float(np.cos(0.3))
    (negs,) = mine_negatives(["q0"], queries[:1], index, {}, n=5, from_rank=2, to_rank=15, ceilings=[ceiling])
    assert len(negs) == 5
    assert all(int(item[1:]) > 6 for item in negs), negs
    # an impossible ceiling leaves none rather than a likely positive
    (negs,) = mine_negatives(["q0"], queries[:1], index, {}, n=2, from_rank=2, to_rank=15, ceilings=[-2.0])
    assert negs == []


# validation checkpoint selection ---------------------------------------------------------------------------
class _ScriptedScorer:
    """Returns scores from a list, one per call: the start first, then one per scoring."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.calls = 0

    def __call__(self, model) -> float:
        self.calls += 1
        return self.scores.pop(0)


class _Fingerprints(TrainerCallback):
    """Records the model's fingerprint at every step end (after KeepBest scored it)."""

    def __init__(self, model) -> None:
        self.model = model
        self.by_step: dict[int, str] = {}

    def on_step_end(self, args, state, control, **kwargs):
        self.by_step[state.global_step] = model_fingerprint(self.model)
        return control


def _align_with(shop: Shop, scores: list[float], steps: int = 6, every: int = 2, **early):
    student = static_student(_random_static(shop.tokenizer, dim=8), teacher_dim=32)
    start = model_fingerprint(student)
    scorer = _ScriptedScorer(scores)
    keeper = KeepBest(student, scorer, every=every, start_score=scorer(student), **early)
    recorder = _Fingerprints(student)
    config = StaticStudentConfig(name="s", align={"steps": steps, "batch_size": 32, "learning_rate": 1e-2})
    align_student(student, shop.pool, shop.pool_targets, config, progress=False, callbacks=[keeper, recorder])
    return student, start, keeper, recorder


def test_keep_best_restores_the_best_scoring_step(shop: Shop) -> None:
    student, start, keeper, recorder = _align_with(shop, [0.5, 0.4, 0.7, 0.6])  # start, steps 2, 4, 6
    selection = keeper.selection
    assert selection.history == [(0, 0.5), (2, 0.4), (4, 0.7), (6, 0.6)]
    assert (selection.best_step, selection.best_score) == (4, 0.7)
    assert model_fingerprint(student) == recorder.by_step[4] != recorder.by_step[6]
    assert model_fingerprint(student) != start
    assert selection.as_dict("start")["kept"] == "step 4"


def test_keep_best_keeps_the_start_when_training_only_hurts(shop: Shop) -> None:
    student, start, keeper, _ = _align_with(shop, [0.5, 0.4, 0.5, 0.3])  # a tie with the start is not better
    assert keeper.selection.best_step == 0
    assert model_fingerprint(student) == start
    assert keeper.selection.as_dict("untrained start")["kept"] == "untrained start"


def test_keep_best_stops_after_patience_scorings_without_a_gain(shop: Shop) -> None:
    # start 0.5; step 2 gains; steps 4 and 6 do not beat 0.7 by 0.05 (6 is higher, but by less): stop at 6 of 12
    student, _, keeper, recorder = _align_with(
        shop, [0.5, 0.7, 0.6, 0.72, 0.9, 0.9, 0.9], steps=12, patience=2, min_delta=0.05
    )
    selection = keeper.selection.as_dict("start")
    assert [step for step, _ in keeper.selection.history] == [0, 2, 4, 6]
    assert max(recorder.by_step) == 6  # no step ran after the stop
    assert (selection["planned_steps"], selection["stopped_step"]) == (12, 6)
    assert selection["kept"] == "step 6"  # the best state is still kept, even when its gain was below min_delta
    assert model_fingerprint(student) == recorder.by_step[6]
    assert selection["stopped"].startswith("early: 2 scorings in a row")


def test_keep_best_without_patience_runs_the_whole_budget(shop: Shop) -> None:
    _, _, keeper, recorder = _align_with(shop, [0.5, 0.4, 0.3, 0.2])
    selection = keeper.selection.as_dict("start")
    assert max(recorder.by_step) == 6
    assert (selection["stopped_step"], selection["stopped"]) == (6, "ran its whole budget")


def test_an_epoch_budget_caps_the_steps_by_the_data() -> None:
    schedule = Schedule(steps=6000, batch_size=128, learning_rate=1e-3, epochs=3)
    assert schedule.steps_for(117_000) == 2743  # ceil(3 x 117,000 / 128): under the cap
    assert schedule.steps_for(1_000_000) == 6000  # the step cap wins on a large pool
    assert schedule.steps_for(50) == 3  # a pool smaller than a batch: one batch of 50 per epoch
    assert Schedule(steps=6000, batch_size=128, learning_rate=1e-3).steps_for(117_000) == 6000


def test_alignment_runs_the_epoch_budget(shop: Shop) -> None:
    student = static_student(_random_static(shop.tokenizer, dim=8), teacher_dim=32)
    recorder = _Fingerprints(student)
    config = StaticStudentConfig(name="s", align={"steps": 1000, "batch_size": 32, "learning_rate": 1e-2, "epochs": 2})
    align_student(student, shop.pool, shop.pool_targets, config, progress=False, callbacks=[recorder])
    assert max(recorder.by_step) == config.align.steps_for(len(shop.pool)) < 1000


def test_validation_scorer_matches_evaluate_rankings(shop: Shop) -> None:
    teacher = load_model(str(shop.teacher_path))
    labels = {q: {next(iter(shop.pairs.positives_by_query[q])): 3.0} for q in shop.queries[:40]}
    scorer = ValidationScorer(list(labels), labels, shop.index, RelevanceScale())
    ranked, _ = shop.index.search(encode(teacher, list(labels)), 10)
    expected = evaluate_rankings(dict(zip(labels, ranked, strict=True)), labels).means["ndcg@10"]
    assert scorer(teacher) == pytest.approx(expected)
    assert 0 < expected <= 1
    teacher.train()
    scorer(teacher)
    assert teacher.training  # scoring leaves the training mode as it found it
    assert evaluation_interval(100, 10) == 10 and evaluation_interval(5, 10) == 1

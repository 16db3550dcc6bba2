"""The one-call API: a teacher and texts in, a query encoder that searches the teacher's item embeddings out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from harnesslm.config import SelectionConfig
from harnesslm.distill import ItemSpace, distill_query_encoder
from harnesslm.encoding.cache import encode
from harnesslm.models.model_loading import load_model


@pytest.fixture(scope="module")
def shop(tiny_teacher: Path) -> dict:
    from harnesslm.demo.shop import make_demo_shop

    demo = make_demo_shop(n_products=300, n_queries=150, n_unlabeled=100)
    teacher = load_model(str(tiny_teacher))
    ids = demo.catalog["product_uid"].astype(str).tolist()
    judged = demo.judgments.assign(product_uid=demo.judgments["product_uid"].astype(str))
    queries = list(dict.fromkeys(judged["search_term"]))
    train, validation = queries[:100], queries[100:]
    qrels = {
        q: dict(zip(rows["product_uid"], rows["relevance"], strict=True))
        for q, rows in judged[judged["search_term"].isin(validation)].groupby("search_term")
    }
    good = judged[judged["search_term"].isin(train) & (judged["relevance"] >= 2.33)]
    return {
        "teacher": teacher,
        "texts": [*train, *demo.unlabeled_queries["search_term"], *demo.catalog["product_title"][:100]],
        "items": ItemSpace(ids, encode(teacher, demo.catalog["product_title"].tolist(), role="document")),
        "validation": qrels,
        "pairs": list(zip(good["search_term"], good["product_uid"], strict=True)),
    }


def _agreement(student: SentenceTransformer, teacher: SentenceTransformer, queries: list[str]) -> float:
    """Mean cosine between the student's and the teacher's embedding of each query."""
    return float(np.mean(np.sum(encode(student, queries) * encode(teacher, queries), axis=1)))


def test_a_static_student_comes_out_in_the_teachers_space(shop: dict) -> None:
    schedule = {"align": {"steps": 60, "batch_size": 32}, "refine": {"steps": 10, "batch_size": 16}}
    student = distill_query_encoder(
        shop["teacher"],
        shop["texts"],
        kind="static",
        settings=schedule,
        items=shop["items"],
        validation=shop["validation"],
        train_pairs=shop["pairs"],
    )
    held_out = list(shop["validation"])
    assert encode(student, held_out).shape == (len(held_out), shop["items"].embeddings.shape[1])
    assert _agreement(student, shop["teacher"], held_out) > 0.5  # aligned, on queries it never saw


def test_a_transformer_student_of_another_base_gets_a_head_into_the_teachers_width(
    shop: dict, tiny_bert_builder, tmp_path: Path
) -> None:
    texts = [*shop["texts"], *shop["validation"]]
    base = tiny_bert_builder(tmp_path, texts, hidden=16, layers=2, seed=1)  # another model, 16-d, not the teacher
    student = distill_query_encoder(
        shop["teacher"],
        shop["texts"],
        kind="truncated",
        settings={"base": str(base), "layers": 1, "align": {"steps": 30, "batch_size": 32}},
    )
    assert student.get_embedding_dimension() == shop["items"].embeddings.shape[1] == 32
    assert len(student[0].auto_model.encoder.layer) == 1


def test_validation_stops_alignment_early_and_keeps_the_best_state(shop: dict) -> None:
    student = distill_query_encoder(
        shop["teacher"],
        shop["texts"],
        # far too high a rate: it gets worse; no epoch cap, so 400 steps are planned
        settings={"align": {"steps": 400, "batch_size": 32, "learning_rate": 0.5, "epochs": None}},
        items=shop["items"],
        validation=shop["validation"],
        selection=SelectionConfig(evaluations=20, patience=2),
    )
    align = student.distill_report["align"]
    assert align["stopped"].startswith("early") and align["stopped_step"] < align["planned_steps"] == 400
    assert align["validation_ndcg@10"] == max(score for _, score in align["history"])


def test_targets_must_match_the_texts(shop: dict) -> None:
    with pytest.raises(ValueError, match="3 texts but 2 target"):
        distill_query_encoder(shop["teacher"], ["a", "b", "c"], np.zeros((2, 32), dtype=np.float32))


def test_score_matching_aligns_with_the_teachers_items(shop: dict) -> None:
    settings = {"align": {"steps": 40, "batch_size": 32, "score_weight": 1.0, "score_k": 5}}
    student = distill_query_encoder(shop["teacher"], shop["texts"], settings=settings, items=shop["items"])
    assert _agreement(student, shop["teacher"], list(shop["validation"])) > 0.5
    with pytest.raises(ValueError, match="needs the teacher's item embeddings"):
        distill_query_encoder(shop["teacher"], shop["texts"], settings=settings)


def test_a_dsformer_student_aligns_and_refines_factorised(shop: dict, tiny_bert_builder, tmp_path: Path) -> None:
    from harnesslm.students.dense_sparse import DenseSparseLinear, written_back

    texts = [*shop["texts"], *shop["validation"]]
    base = tiny_bert_builder(tmp_path, texts, hidden=64, layers=2, seed=2)  # wide enough to factorise
    student = distill_query_encoder(
        shop["teacher"],
        shop["texts"],
        kind="truncated",
        settings={
            "base": str(base),
            "layers": 1,
            "dense_sparse": {"rank_ratio": 0.5},
            "align": {"steps": 20, "batch_size": 32},
            "refine": {"steps": 5, "batch_size": 16},
        },
        items=shop["items"],
        validation=shop["validation"],
        train_pairs=shop["pairs"],
    )
    assert any(isinstance(m, DenseSparseLinear) for m in student.modules()), "trained factorised, both phases"
    held_out = list(shop["validation"])
    np.testing.assert_allclose(encode(written_back(student), held_out), encode(student, held_out), atol=1e-5)
    assert encode(student, held_out).shape == (len(held_out), shop["items"].embeddings.shape[1])

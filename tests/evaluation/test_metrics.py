"""Metrics: hand-worked values on tiny inputs, and a randomized comparison with pytrec_eval (trec_eval)."""

from __future__ import annotations

import math
import random

import pytest

from harnesslm.evaluation.metrics import MetricReport, RelevanceScale, evaluate_rankings, recovery

LABELS = (1.0, 1.33, 1.67, 2.0, 2.33, 2.67, 3.0)  # Home Depot-style averaged grades


def _tiny_report() -> MetricReport:
    qrels = {
        "q1": {"a": 3.0, "b": 2.0, "c": 1.0},  # gains a=2, b=1, c=0; only a is relevant (>= 2.33)
        "q2": {"a": 3.0},  # absent from the rankings
        "q3": {"x": 2.0},  # no relevant item, but a positive gain
    }
    rankings = {"q1": ["c", "a", "zz", "b"], "q3": ["x"], "q_extra": ["a"]}
    return evaluate_rankings(rankings, qrels)


def test_hand_computed_values() -> None:
    report = _tiny_report()
    # q1, ranking c, a, zz (unjudged), b -> gains 0, 2, 0, 1:
    #   DCG  = 0/log2(2) + 2/log2(3) + 0/log2(4) + 1/log2(5) = 1.26186 + 0.43068 = 1.69254
    #   IDCG = 2/log2(2) + 1/log2(3) + 0/log2(4)             = 2 + 0.63093     = 2.63093
    #   NDCG@10 = 0.64332; the one relevant item is at rank 2: recall 1, P@10 = 0.1, RR = 1/2.
    ndcg_q1 = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert report.per_query["q1"] == pytest.approx({"ndcg@10": ndcg_q1, "recall@100": 1.0, "p@10": 0.1, "mrr@10": 0.5})
    assert ndcg_q1 == pytest.approx(0.64332, abs=1e-5)
    # q2 has no ranking: 0 everywhere. q3's single item has gain 1 at rank 1 (NDCG 1) but is not relevant.
    assert report.per_query["q2"] == {"ndcg@10": 0.0, "recall@100": 0.0, "p@10": 0.0, "mrr@10": 0.0}
    assert report.per_query["q3"] == {"ndcg@10": 1.0, "recall@100": 0.0, "p@10": 0.0, "mrr@10": 0.0}
    # Means run over the three qrels queries; q_extra (not judged) is ignored.
    assert report.n_queries == 3
    assert set(report.per_query) == {"q1", "q2", "q3"}
    assert report.means == pytest.approx(
        {"ndcg@10": (ndcg_q1 + 1.0) / 3, "recall@100": 1 / 3, "p@10": 0.1 / 3, "mrr@10": 0.5 / 3}
    )


def test_cutoffs_name_the_keys_and_apply() -> None:
    qrels = {"q": {"a": 3.0, "b": 3.0}}
    report = evaluate_rankings({"q": ["x", "y", "a", "b"]}, qrels, ndcg_k=2, recall_k=3, precision_k=4, mrr_k=2)
    assert list(report.means) == ["ndcg@2", "recall@3", "p@4", "mrr@2"]
    assert report.means == pytest.approx({"ndcg@2": 0.0, "recall@3": 0.5, "p@4": 0.5, "mrr@2": 0.0})


def test_custom_scale_and_zero_ideal() -> None:
    qrels = {"q": {"a": 1.0, "b": 0.0}}
    binary = RelevanceScale(label_offset=0.0, relevant_at=1.0)
    assert evaluate_rankings({"q": ["b", "a"]}, qrels, binary).per_query["q"] == pytest.approx(
        {"ndcg@10": 1 / math.log2(3), "recall@100": 1.0, "p@10": 0.1, "mrr@10": 0.5}
    )
    # Default scale: both labels are below the offset, so the ideal DCG is 0 and NDCG is 0, not nan.
    assert evaluate_rankings({"q": ["a"]}, qrels).means["ndcg@10"] == 0.0


def test_duplicate_ids_count_once() -> None:
    qrels = {"q": {"a": 3.0, "b": 3.0}}
    report = evaluate_rankings({"q": ["a", "a", "b"]}, qrels, precision_k=2)
    assert report.means["p@2"] == 1.0  # a, b: the repeated a does not take rank 2
    assert report.means["ndcg@10"] == pytest.approx(1.0)


def test_no_queries() -> None:
    report = evaluate_rankings({"q": ["a"]}, {})
    assert report.n_queries == 0
    assert all(math.isnan(value) for value in report.means.values())


def test_recovery() -> None:
    assert recovery(0.45, 0.5) == pytest.approx(90.0)
    assert math.isnan(recovery(0.3, 0.0))


def _random_case(seed: int) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """~50 queries: graded labels (many ties), unjudged retrieved items, queries without any relevant
    item, queries missing from the rankings or with an empty ranking, rankings longer than 100."""
    rng = random.Random(seed)
    pool = [f"d{i}" for i in range(200)]
    qrels: dict[str, dict[str, float]] = {}
    rankings: dict[str, list[str]] = {}
    for q in range(50):
        qid = f"q{q}"
        labels = LABELS[:4] if q % 7 == 0 else LABELS  # every 7th query: nothing >= 2.33
        qrels[qid] = {doc: rng.choice(labels) for doc in rng.sample(pool, rng.randint(1, 25))}
        if q % 11 == 5:
            continue  # missing from the rankings
        judged = list(qrels[qid])
        depth = 0 if q % 13 == 4 else rng.randint(1, 130)
        candidates = rng.sample(judged, min(len(judged), depth // 2)) + rng.sample(pool, depth)
        rankings[qid] = list(dict.fromkeys(rng.sample(candidates, len(candidates))))[:depth]
    return qrels, rankings


def _as_trec_run(rankings: dict[str, list[str]], depth: int | None = None) -> dict[str, dict[str, float]]:
    """Strictly decreasing scores, so trec_eval's sort (score, then docid for ties) keeps our order."""
    return {
        qid: {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked[:depth])}
        for qid, ranked in rankings.items()
        if ranked
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytrec_eval(seed: int) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    scale = RelevanceScale()
    qrels, rankings = _random_case(seed)
    # trec_eval wants integer labels: scaling the gains by 100 leaves NDCG unchanged, and the relevance
    # threshold maps to relevance_level = (2.33 - 1) * 100 = 133.
    trec_qrels = {
        qid: {doc: round(max(label - scale.label_offset, 0.0) * 100) for doc, label in judged.items()}
        for qid, judged in qrels.items()
    }
    level = round((scale.relevant_at - scale.label_offset) * 100)
    measures = {"ndcg_cut_10", "recall_100", "P_10", "recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator(trec_qrels, measures, relevance_level=level)
    full = evaluator.evaluate(_as_trec_run(rankings))
    # trec_eval's recip_rank has no cutoff: MRR@10 is recip_rank on rankings cut to 10.
    cut = pytrec_eval.RelevanceEvaluator(trec_qrels, {"recip_rank"}, relevance_level=level).evaluate(
        _as_trec_run(rankings, depth=10)
    )

    report = evaluate_rankings(rankings, qrels, scale)
    zero = {"ndcg_cut_10": 0.0, "recall_100": 0.0, "P_10": 0.0, "recip_rank": 0.0}
    expected = {}
    for qid in qrels:  # queries trec_eval did not see (no ranking) score 0, as with `trec_eval -c`
        values = full.get(qid, zero)
        expected[qid] = {
            "ndcg@10": values["ndcg_cut_10"],
            "recall@100": values["recall_100"],
            "p@10": values["P_10"],
            "mrr@10": cut.get(qid, zero)["recip_rank"],
        }
    assert list(report.per_query) == list(expected)
    for qid, values in expected.items():
        assert report.per_query[qid] == pytest.approx(values, abs=1e-6), qid
    for name, mean in report.means.items():
        assert mean == pytest.approx(sum(v[name] for v in expected.values()) / len(qrels), abs=1e-6)
    # The case exercises what it claims to.
    assert any(qid not in rankings for qid in qrels)
    assert any(all(label < scale.relevant_at for label in judged.values()) for judged in qrels.values())
    assert any(len(ranked) > 100 for ranked in rankings.values())
    assert 0 < report.means["mrr@10"] < 1

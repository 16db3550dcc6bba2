"""Evaluate teacher (before/after fine-tuning), students (after each phase) and baselines on held-out queries.

Besides mean metrics, every system gets the proof that its numbers hold: paired bootstrap 95% confidence
intervals over the queries (on NDCG@10, Recall@100 and the recovery of the fine-tuned teacher's scores), the
overlap of its top-10 with the teacher's, and for students the cosine of their query embeddings to the
teacher's. ``worst_queries`` lists, per student, the test queries where it loses most NDCG@10 to the teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from harnesslm.encoding.cache import cache_path
from harnesslm.evaluation.agreement import cosine_agreement, top_k_overlap
from harnesslm.evaluation.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, PairedBootstrap
from harnesslm.evaluation.fusion_weight import choose_weight
from harnesslm.evaluation.metrics import (
    MetricReport,
    RelevanceScale,
    evaluate_rankings,
    qrels_from_judgments,
    recovery,
)
from harnesslm.evaluation.systems import SystemId
from harnesslm.index.bm25 import BM25Retriever
from harnesslm.index.fusion import RRF_K, fuse_all
from harnesslm.index.item_index import ItemIndex, index_recall
from harnesslm.models.model_loading import load_model
from harnesslm.pipeline.export import onnx_encoders
from harnesslm.run.catalog_embeddings import item_embeddings
from harnesslm.run.run_dir import RunDir, StepMissingError, console, judged_queries
from harnesslm.run.student_store import latest_phase
from harnesslm.serving.searcher import Searcher

TEACHER = "teacher (fine-tuned)"
TEACHER_BASE = "teacher (off-the-shelf)"
BOOTSTRAP_SEED = 0
OVERLAP_K = 10
WORST_QUERIES = 20
NDCG, RECALL = "ndcg@10", "recall@100"
BM25 = "BM25"


@dataclass
class System:
    """One evaluated system: its role, top-k item ids per query and, for encoders searching the teacher's
    index (the teacher and the students), their query embeddings."""

    role: str
    ranked: list[list[str]]
    query_embeddings: np.ndarray | None = None
    exported: bool = False  # an ONNX copy of a student
    searcher: Searcher | None = field(default=None, repr=False)  # to rank other queries the same way


def qrels_of(judgments: pd.DataFrame) -> dict[str, dict[str, float]]:
    return qrels_from_judgments(judgments["query"], judgments["item_id"], judgments["label"])


def evaluate(
    run: RunDir,
    judgments_path: Path | None = None,
    columns: dict[str, str] | None = None,
    progress: bool = True,
) -> dict:
    """Score every available system on the test split (or ``judgments_path``); write metrics.json."""
    cfg = run.config
    if judgments_path is None and run.split("test").empty:
        console.print(
            "[yellow]evaluate: skipped, the test split is empty (data.split gives it no queries); "
            "evaluate on another judged file with `harness evaluate RUN --judgments FILE`"
        )
        return {}
    with run.timed("evaluate"):
        judgments = judged_queries(run, judgments_path, **(columns or {}))
        qrels = qrels_of(judgments)
        queries = list(qrels)[: cfg.evaluation.max_queries]
        qrels = {q: qrels[q] for q in queries}
        scale = RelevanceScale(cfg.data.label_offset, cfg.data.relevant_at)
        k = cfg.evaluation.k
        bm25 = None
        if "bm25" in cfg.evaluation.baselines:
            bm25 = run.lexical_index
        found = _rankings(run, queries, k, progress, bm25)
        hybrid = _hybrids(run, found, k, bm25) if bm25 is not None else {}
        found.update(hybrid.pop("systems", {}))
        systems, per_query = {}, {}
        for name, system in found.items():
            report = evaluate_rankings(dict(zip(queries, system.ranked, strict=True)), qrels, scale)
            systems[name] = {"role": system.role, **report.means}
            per_query[name] = _per_query(report, queries)
        teacher_scores = systems.get(TEACHER)
        for values in systems.values():
            if teacher_scores:
                values["ndcg_recovery_%"] = recovery(values["ndcg@10"], teacher_scores["ndcg@10"])
                values["recall_recovery_%"] = recovery(values["recall@100"], teacher_scores["recall@100"])
        result = {
            "queries": len(queries),
            "judgments": str(judgments_path) if judgments_path else "test split",
            "systems": systems,
            **({"hybrid": hybrid} if hybrid else {}),
        }
        if queries:
            bootstrap = PairedBootstrap.draw(len(queries), DEFAULT_RESAMPLES, DEFAULT_CONFIDENCE, BOOTSTRAP_SEED)
            for name, values in systems.items():
                values.update(_proof(name, found, per_query, bootstrap))
            result["bootstrap"] = {
                "resamples": DEFAULT_RESAMPLES,
                "confidence": DEFAULT_CONFIDENCE,
                "seed": BOOTSTRAP_SEED,
            }
            if TEACHER in found:
                result["worst_queries"] = _worst_queries(found, per_query, queries)
        result.update(_ann_recall(run, queries, k, found[TEACHER].query_embeddings))
        if judgments_path is None and (run.data_dir / "ood_test.parquet").exists():
            result["ood_test"] = _out_of_distribution(run, k, scale, progress, bm25)
        run.write_json("metrics.json", result)  # replaced whole: no block of an earlier evaluation survives
    return result


def _out_of_distribution(run: RunDir, k: int, scale: RelevanceScale, progress: bool, bm25) -> dict:
    """Every system's means and recovery on ``ood_test``: queries about product groups held out of training
    (``data.ood_holdout``)."""
    qrels = qrels_of(run.split("ood_test"))
    queries = list(qrels)[: run.config.evaluation.max_queries]
    if not queries:
        return {"queries": 0, "systems": {}}
    found = _rankings(run, queries, k, progress, bm25)
    systems = {}
    for name, system in found.items():
        means = evaluate_rankings(dict(zip(queries, system.ranked, strict=True)), qrels, scale).means
        systems[name] = {"role": system.role, **means}
    teacher = systems.get(TEACHER)
    for values in systems.values():
        if teacher:
            values["ndcg_recovery_%"] = recovery(values["ndcg@10"], teacher["ndcg@10"])
            values["recall_recovery_%"] = recovery(values["recall@100"], teacher["recall@100"])
    return {"queries": len(queries), "systems": systems}


def _per_query(report: MetricReport, queries: Sequence[str]) -> dict[str, np.ndarray]:
    """NDCG@10 and Recall@100 of each query, in the order of ``queries``."""
    return {metric: np.array([report.per_query[q][metric] for q in queries]) for metric in (NDCG, RECALL)}


def _proof(
    name: str, found: dict[str, System], per_query: dict[str, dict[str, np.ndarray]], bootstrap: PairedBootstrap
) -> dict:
    """Confidence intervals of one system, and its agreement with the fine-tuned teacher when present."""
    own, system = per_query[name], found[name]
    out: dict = {f"{NDCG}_ci": bootstrap.mean(own[NDCG]).bounds, f"{RECALL}_ci": bootstrap.mean(own[RECALL]).bounds}
    teacher = found.get(TEACHER)
    if teacher is None:
        return out
    out["ndcg_recovery_ci_%"] = bootstrap.recovery(own[NDCG], per_query[TEACHER][NDCG]).bounds
    out["recall_recovery_ci_%"] = bootstrap.recovery(own[RECALL], per_query[TEACHER][RECALL]).bounds
    out[f"top{OVERLAP_K}_overlap"] = float(top_k_overlap(system.ranked, teacher.ranked, OVERLAP_K).mean())
    if system.role == "student" and system.query_embeddings is not None and teacher.query_embeddings is not None:
        out.update(cosine_agreement(system.query_embeddings, teacher.query_embeddings).as_metrics())
    return out


def _worst_queries(
    found: dict[str, System], per_query: dict[str, dict[str, np.ndarray]], queries: Sequence[str]
) -> dict[str, list[dict]]:
    """Per student (not its ONNX copies): the queries where the teacher's NDCG@10 exceeds its own the most."""
    teacher = per_query[TEACHER][NDCG]
    out = {}
    for name, system in found.items():
        if system.role != "student" or system.exported:
            continue
        student = per_query[name][NDCG]
        order = np.argsort(student - teacher, kind="stable")[:WORST_QUERIES]  # largest teacher - student first
        out[name] = [
            {"query": queries[i], f"teacher_{NDCG}": float(teacher[i]), f"student_{NDCG}": float(student[i])}
            for i in order
        ]
    return out


def _search(searcher: Searcher, queries: Sequence[str], k: int) -> tuple[list[list[str]], np.ndarray]:
    """Top-k ids per query and the query embeddings that found them (encoded once)."""
    embeddings = searcher.encode(queries)
    return searcher.index.search(embeddings, k)[0], embeddings


def _rankings(
    run: RunDir, queries: Sequence[str], k: int, progress: bool, bm25: BM25Retriever | None
) -> dict[str, System]:
    """Top-k item ids per query for each system that exists in the run."""
    catalog_ids = run.catalog["item_id"].tolist()
    out: dict[str, System] = {}
    baselines = run.config.evaluation.baselines
    if bm25 is not None:
        out[BM25] = System("baseline", bm25.search_ids(queries, k))
    if "teacher-off-the-shelf" in baselines or _catalog_cached(run, run.base_teacher):
        base = run.base_teacher
        base_index = ItemIndex.build(item_embeddings(run, base, progress), catalog_ids, space="base")
        out[TEACHER_BASE] = System("teacher", Searcher(base, base_index).search(queries, k)[0])
    teacher = Searcher(run.teacher, run.index)
    out[TEACHER] = System("teacher", *_search(teacher, queries, k), searcher=teacher)
    if "static-untrained" in baselines and (run.static_baseline_dir / "modules.json").exists():
        static = load_model(str(run.static_baseline_dir))
        own = ItemIndex.build(item_embeddings(run, static, progress), catalog_ids, space="static")
        out["static, untrained (own index)"] = System("baseline", Searcher(static, own).search(queries, k)[0])
    students = [(s.name, phase) for s in run.students() for phase in ("aligned", "refined")]
    for name, phase in track(students, description="students", disable=not progress):
        folder = run.student_dir(name, phase)
        if (folder / "modules.json").exists():
            searcher = Searcher(load_model(str(folder)), run.index)
            out[SystemId(name, phase).label] = System("student", *_search(searcher, queries, k), searcher=searcher)
            for label, encoder in onnx_encoders(run, name, phase).items():  # exported copies, when present
                ranked, embeddings = _search(Searcher(encoder, run.index), queries, k)
                out[label] = System("student", ranked, embeddings, exported=True)
    return out


def _catalog_cached(run: RunDir, model) -> bool:
    """Whether ``model``'s catalog embeddings are in the cache (a row from them costs no catalog pass)."""
    return cache_path(model, run.catalog["text"].tolist(), run.cache_dir, role="document").exists()


def validation_weight(
    run: RunDir,
    searcher: Searcher,
    bm25: BM25Retriever,
    k: int | None = None,
    lexical: list[list[str]] | None = None,
) -> tuple[float, dict[float, float], int] | None:
    """The dense weight of ``searcher`` + BM25 with the best NDCG@10 on the validation queries (never the test
    split), every tried weight's NDCG@10, and how many queries chose it; None without validation queries.

    ``lexical``: BM25's rankings of those queries, when the caller already has them (one BM25 pass serves
    every dense system it fuses).
    """
    frame = run.split("validation")
    if frame.empty:
        return None
    k = k or run.config.evaluation.k
    qrels = qrels_of(frame)
    queries = list(qrels)[: run.config.selection.max_queries]
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    dense = searcher.search(queries, k)[0]
    lexical = lexical if lexical is not None else bm25.search_ids(queries, k)
    weight, by_weight = choose_weight(queries, dense, lexical, qrels, scale, depth=k)
    return weight, by_weight, len(queries)


def validation_lexical(run: RunDir, bm25: BM25Retriever, k: int) -> list[list[str]]:
    """BM25's top-``k`` for the validation queries :func:`validation_weight` uses, in its order."""
    queries = list(qrels_of(run.split("validation")))[: run.config.selection.max_queries]
    return bm25.search_ids(queries, k)


def _hybrids(run: RunDir, found: dict[str, System], k: int, bm25: BM25Retriever) -> dict:
    """Each dense system (the fine-tuned teacher, each student's latest phase) fused with BM25 by weighted
    reciprocal-rank fusion, its weight chosen on the validation queries (never on the test queries)."""
    dense = [TEACHER]
    for student in run.students():
        try:
            dense.append(SystemId(student.name, latest_phase(run, student.name)).label)
        except StepMissingError:
            continue
    systems, weights, validation_queries = {}, {}, 0
    lexical = validation_lexical(run, bm25, k)  # once, for every dense system
    for label in (d for d in dense if d in found and found[d].searcher is not None):
        chosen = validation_weight(run, found[label].searcher, bm25, k, lexical)
        if chosen is None:
            return {}
        weight, by_weight, validation_queries = chosen
        sid = SystemId.parse(label)
        name = SystemId(f"{sid.name} + BM25", sid.phase).label
        systems[name] = System("hybrid", fuse_all(found[label].ranked, found[BM25].ranked, weight, depth=k))
        weights[name] = {"dense": label, "weight": weight, "validation_ndcg@10": by_weight}
        console.print(f"{name}: dense weight {weight} (validation NDCG@10 {by_weight[weight]:.4f})")
    if not systems:
        return {}
    return {
        "method": f"weighted reciprocal-rank fusion (k={RRF_K})",
        "validation_queries": validation_queries,
        "weights": weights,
        "systems": systems,
    }


def _ann_recall(run: RunDir, queries: Sequence[str], k: int, query_emb: np.ndarray | None = None) -> dict:
    """With an HNSW index, its recall@k against exact search over the same teacher embeddings."""
    if run.index.meta.kind == "exact":
        return {}
    embeddings = item_embeddings(run, run.teacher, progress=False)
    exact = ItemIndex.build(embeddings, run.catalog["item_id"].tolist(), space=run.teacher_space)
    if query_emb is None:
        query_emb = Searcher(run.teacher, run.index).encode(queries)
    value = index_recall(run.index, exact, query_emb, k)
    console.print(f"{run.index.meta.kind} recall@{k} against exact search: {value:.4f}")
    return {"ann_recall": {"kind": run.index.meta.kind, f"recall@{k}_vs_exact": value}}

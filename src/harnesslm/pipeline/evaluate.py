"""Evaluate teacher (before/after fine-tuning), students (after each phase) and baselines on held-out queries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich.progress import track

from harnesslm.evaluation.bm25 import BM25Retriever
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings, recovery
from harnesslm.index.item_index import ItemIndex, index_recall
from harnesslm.models.students import load_model
from harnesslm.pipeline.export import onnx_encoders
from harnesslm.pipeline.run_dir import RunDir, console
from harnesslm.pipeline.steps import item_embeddings, judged_queries
from harnesslm.serving.searcher import Searcher

TEACHER = "teacher (fine-tuned)"
TEACHER_BASE = "teacher (off-the-shelf)"


def qrels_of(judgments: pd.DataFrame) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, float]] = {}
    for query, item, label in zip(judgments["query"], judgments["item_id"], judgments["label"], strict=True):
        qrels.setdefault(query, {})[item] = float(label)
    return qrels


def evaluate(
    run: RunDir,
    judgments_path: Path | None = None,
    columns: dict[str, str] | None = None,
    progress: bool = True,
) -> dict:
    """Score every available system on the test split (or ``judgments_path``); write metrics.json."""
    cfg = run.config
    with run.timed("evaluate"):
        judgments = judged_queries(run, judgments_path, **(columns or {}))
        qrels = qrels_of(judgments)
        queries = list(qrels)[: cfg.evaluation.max_queries]
        qrels = {q: qrels[q] for q in queries}
        scale = RelevanceScale(cfg.data.label_offset, cfg.data.relevant_at)
        k = cfg.evaluation.k
        rankings = _rankings(run, queries, k, progress)
        systems = {}
        for name, (role, ranked) in rankings.items():
            report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
            systems[name] = {"role": role, **report.means}
        teacher_scores = systems.get(TEACHER)
        for values in systems.values():
            if teacher_scores:
                values["ndcg_recovery_%"] = recovery(values["ndcg@10"], teacher_scores["ndcg@10"])
                values["recall_recovery_%"] = recovery(values["recall@100"], teacher_scores["recall@100"])
        result = {
            "queries": len(queries),
            "judgments": str(judgments_path) if judgments_path else "test split",
            "systems": systems,
        }
        result.update(_ann_recall(run, queries, k))
        run.update_json("metrics.json", result)
    return result


def _rankings(run: RunDir, queries: Sequence[str], k: int, progress: bool) -> dict[str, tuple[str, list]]:
    """Top-k item ids per query for each system that exists in the run."""
    catalog_ids = run.catalog["item_id"].tolist()
    out: dict[str, tuple[str, list]] = {}
    baselines = run.config.evaluation.baselines
    if "bm25" in baselines:
        bm25 = BM25Retriever.fit(catalog_ids, run.catalog["text"].tolist())
        out["BM25"] = ("baseline", bm25.search_ids(queries, k))
    base = run.base_teacher
    base_index = ItemIndex.build(item_embeddings(run, base, progress), catalog_ids, space="base")
    out[TEACHER_BASE] = ("teacher", Searcher(base, base_index).search(queries, k)[0])
    teacher_searcher = Searcher(run.teacher, run.index)
    out[TEACHER] = ("teacher", teacher_searcher.search(queries, k)[0])
    if "static-untrained" in baselines and (run.static_baseline_dir / "modules.json").exists():
        static = load_model(str(run.static_baseline_dir))
        own = ItemIndex.build(item_embeddings(run, static, progress), catalog_ids, space="static")
        out["static, untrained (own index)"] = ("baseline", Searcher(static, own).search(queries, k)[0])
    students = [(s.name, phase) for s in run.students() for phase in ("aligned", "refined")]
    for name, phase in track(students, description="students", disable=not progress):
        folder = run.student_dir(name, phase)
        if (folder / "modules.json").exists():
            searcher = Searcher(load_model(str(folder)), run.index)
            out[f"{name} ({phase})"] = ("student", searcher.search(queries, k)[0])
            for label, encoder in onnx_encoders(run, name, phase).items():  # exported copies, when present
                out[label] = ("student", Searcher(encoder, run.index).search(queries, k)[0])
    return out


def _ann_recall(run: RunDir, queries: Sequence[str], k: int) -> dict:
    """With an HNSW index, its recall@k against exact search over the same teacher embeddings."""
    if run.index.meta.kind == "exact":
        return {}
    embeddings = item_embeddings(run, run.teacher, progress=False)
    exact = ItemIndex.build(embeddings, run.catalog["item_id"].tolist(), space=run.teacher_space)
    query_emb = Searcher(run.teacher, run.index).encode(queries)
    value = index_recall(run.index, exact, query_emb, k)
    console.print(f"{run.index.meta.kind} recall@{k} against exact search: {value:.4f}")
    return {"ann_recall": {"kind": run.index.meta.kind, f"recall@{k}_vs_exact": value}}

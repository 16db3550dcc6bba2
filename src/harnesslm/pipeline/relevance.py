"""The re-ranking stage of a run: relevance teacher, teacher labelling, distilled re-rankers, evaluation.

Layout inside the run directory::

    relevance/candidates.parquet   the retriever's top-K for training, pool and test queries (query, rank, item_id)
    relevance/teacher/             the fine-tuned cross-encoder relevance teacher
    relevance/labels.parquet       teacher scores of judged and augmented (never judged) pairs
    relevance/rerankers/LOSS/      the small cross-encoder distilled with each loss
    relevance.json                 teacher training, distillation and re-ranking figures
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from sentence_transformers.cross_encoder import CrossEncoder

from harnesslm.atomic import atomic_directory, atomic_file, write_text
from harnesslm.config import updated
from harnesslm.evaluation.latency import measure_latency, thread_info, torch_threads
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings, qrels_from_judgments, recovery
from harnesslm.evaluation.systems import RETRIEVER_ONLY, TEACHER_RERANKER
from harnesslm.models.fingerprint import model_fingerprint
from harnesslm.rerank import datasets as rerank_data
from harnesslm.rerank import distill_rankers as distill
from harnesslm.rerank.labelling import augmentation_pairs, label_pairs
from harnesslm.rerank.models import load_cross_encoder, small_cross_encoder, truncate_cross_encoder
from harnesslm.rerank.professional_terms import ProfessionalTerms
from harnesslm.rerank.relevance_teacher import fine_tune_relevance_teacher
from harnesslm.rerank.reranker import Reranker
from harnesslm.run import provenance
from harnesslm.run.catalog_embeddings import item_embeddings
from harnesslm.run.run_dir import RunDir, StepMissingError, console
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.searcher import Searcher
from harnesslm.students import meta as student_meta


def _scale(run: RunDir) -> RelevanceScale:
    return RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)


def max_gain(run: RunDir) -> float:
    """The largest NDCG gain in the training judgments (HD: grade 3 - 1 = 2)."""
    return _scale(run).max_gain(run.split("train")["label"])


# candidates ------------------------------------------------------------------------------------------------
def retriever_name(run: RunDir) -> str:
    name = run.config.relevance.retriever
    return "teacher" if name is None else f"{name} ({latest_phase(run, name)})"


def retriever_encoder(run: RunDir):
    """The query encoder of the first stage: the teacher, or the configured student's latest phase."""
    name = run.config.relevance.retriever
    return run.teacher if name is None else load_student(run, name, latest_phase(run, name))


def candidates(run: RunDir, progress: bool = True) -> dict[str, list[str]]:
    """The retriever's top-K for every training, pool and test query, computed once and kept on disk."""
    cfg = run.config.relevance
    path = run.relevance_dir / "candidates.parquet"
    meta_path = path.with_suffix(".json")
    name = retriever_name(run)
    wanted = {"retriever": name, "k": cfg.candidates_k, "space": run.index.meta.space}
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == wanted:
        frame = pd.read_parquet(path)
        return {q: group["item_id"].tolist() for q, group in frame.groupby("query", sort=False)}
    queries = list(dict.fromkeys([*run.query_pool(), *run.split("test")["query"], *run.split("validation")["query"]]))
    encoder = (
        run.teacher if cfg.retriever is None else load_student(run, cfg.retriever, latest_phase(run, cfg.retriever))
    )
    searcher = Searcher(encoder, run.index)
    with run.timed(f"candidates ({name}, top-{cfg.candidates_k})"):
        ids, _ = searcher.search(queries, cfg.candidates_k)
    frame = pd.DataFrame(
        {
            "query": [q for q, row in zip(queries, ids, strict=True) for _ in row],
            "rank": [r for row in ids for r in range(len(row))],
            "item_id": [i for row in ids for i in row],
        }
    )
    with atomic_file(path, "wb") as handle:
        frame.to_parquet(handle, index=False)
    write_text(meta_path, json.dumps(wanted))
    return dict(zip(queries, ids, strict=True))


# teacher ---------------------------------------------------------------------------------------------------
def load_relevance_teacher(run: RunDir) -> CrossEncoder:
    folder = run.relevance_teacher_dir
    if not (folder / "config.json").exists():
        raise StepMissingError(f"no relevance teacher in {folder}: run `harness relevance` first")
    return load_cross_encoder(str(folder), run.config.relevance.max_length)


def relevance_teacher(run: RunDir, progress: bool = True) -> dict[str, float]:
    """Fine-tune the cross-encoder teacher on the training judgments as soft targets (+ retrieved negatives)."""
    found = candidates(run, progress)
    with run.timed("relevance teacher"):
        result = train_relevance_teacher(run, found, run.relevance_teacher_dir, _teacher_inputs(run), progress)
    run.update_json("relevance.json", {"teacher_training": result})
    return result


def train_relevance_teacher(
    run: RunDir, found: dict[str, list[str]], folder: Path, record: tuple[dict, dict], progress: bool = True
) -> dict[str, float]:
    """Train a cross-encoder with the ``relevance.teacher`` settings on the training judgments, its negatives
    drawn from ``found`` (each query's ranked candidates), and save it with its professional terms and
    ``record`` (settings, inputs) into ``folder``. The relevance step's teacher, and the teacher step's
    labeller (``teacher.cross_encoder_labels``), are both made here."""
    cfg = run.config.relevance
    model = load_cross_encoder(cfg.teacher.model, cfg.max_length, run.config.cache_dir)
    dataset = rerank_data.teacher_training_pairs(
        run.split("train"), found, run.item_texts, _scale(run), cfg.teacher.negatives, cfg.seed
    )
    terms = ProfessionalTerms.mine(run.item_texts.values()) if cfg.teacher.professional_terms else None
    if terms is not None:  # the teacher learns from, and later scores, pairs marked with the catalog's terms
        marked = terms.mark_pairs(dataset["query"], dataset["text"])
        dataset = dataset.remove_columns("query").add_column("query", marked).select_columns(["query", "text", "label"])
        console.print(f"professional terms: {len(terms.brands):,} brands, {len(terms.codes):,} model codes")
    torch.manual_seed(cfg.seed)
    metrics = fine_tune_relevance_teacher(model, dataset, cfg, progress)
    with atomic_directory(folder) as tmp:
        model.save_pretrained(str(tmp))
        if terms is not None:
            terms.save(tmp)
        provenance.write_record(tmp, *record)
    console.print(f"cross-encoder trained on {len(dataset):,} soft-labelled pairs, saved to {folder}")
    return {"pairs": len(dataset), **metrics}


# labelling -------------------------------------------------------------------------------------------------
def distillation_queries(run: RunDir) -> tuple[list[str], list[str]]:
    """(training queries the students learn from, queries whose unjudged candidates get teacher labels).

    Training queries are shuffled with the run's seed and cut at ``distil_queries``. Augmentation covers them
    first, then the remaining training queries (their retrieved candidates only: their human judgments stay
    out of the students' data), then, if enabled, the unlabeled pool; all cut at ``augment_queries``.
    Positions in the second list decide which queries come first as the amount of augmented data grows.
    """
    cfg = run.config.relevance
    train = sorted(set(run.split("train")["query"]))
    rng = np.random.default_rng(cfg.seed)
    shuffled = [train[i] for i in rng.permutation(len(train))]
    ordered = shuffled[: cfg.distil_queries]
    augmented = list(shuffled)
    if cfg.extra_unlabeled:
        seen = set(train)
        augmented += [q for q in run.query_pool() if q not in seen]
    return ordered, augmented if cfg.augment_queries is None else augmented[: cfg.augment_queries]


def label(run: RunDir, progress: bool = True) -> pd.DataFrame:
    """Teacher scores for every judged training pair and the augmented pairs; kept in labels.parquet
    (recomputed when the teacher or the augmentation settings change)."""
    cfg = run.config.relevance
    path = run.relevance_dir / "labels.parquet"
    teacher = load_relevance_teacher(run)
    judged_queries, queries = distillation_queries(run)
    wanted = {
        "teacher": model_fingerprint(teacher),
        "retriever": retriever_name(run),
        "augment_k": cfg.augment_k,
        "distil_queries": len(judged_queries),
        "augment_queries": len(queries),
    }
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if path.exists() and meta_path.exists() else None
    if meta == wanted:
        return pd.read_parquet(path)
    found = candidates(run, progress)
    with run.timed("teacher labelling"):
        train = run.split("train")
        students = train.loc[train["query"].isin(set(judged_queries))]
        pairs = augmentation_pairs(students, found, queries, cfg.augment_k, never=train)
        order = {q: i for i, q in enumerate(queries)}
        pairs["augment_order"] = [
            -1 if j else order.get(q, -1) for q, j in zip(pairs["query"], pairs["judged"], strict=True)
        ]
        # the same teacher's scores from an earlier labelling stay valid: only new pairs are scored
        known = pd.read_parquet(path) if meta and meta["teacher"] == wanted["teacher"] else None
        labelled = label_pairs(teacher, pairs, run.item_texts, progress=progress, known=known)
        with atomic_file(path, "wb") as handle:
            labelled.to_parquet(handle, index=False)
        write_text(meta_path, json.dumps(wanted))
        console.print(f"teacher labelled {len(labelled):,} pairs ({int((~labelled['judged']).sum()):,} never judged)")
    return labelled


def with_augmentation(labelled: pd.DataFrame, queries: int | None) -> pd.DataFrame:
    """The judged pairs plus the augmented pairs of the first ``queries`` augmented queries (None: all)."""
    if queries is None:
        return labelled
    keep = labelled["judged"] | (labelled["augment_order"].between(0, queries - 1))
    return labelled.loc[keep].reset_index(drop=True)


# distillation ----------------------------------------------------------------------------------------------
def small_reranker(run: RunDir) -> CrossEncoder:
    """The untrained student re-ranker: the first layers of the relevance teacher (its head included, so it
    starts out ranking like a shallow teacher) or of another model with a new head."""
    cfg = run.config.relevance
    reranker = cfg.reranker
    if reranker.model == "teacher":
        return truncate_cross_encoder(load_relevance_teacher(run), reranker.layers)
    return small_cross_encoder(reranker.model, reranker.layers, cfg.max_length, run.config.cache_dir)


def distill_reranker(
    run: RunDir,
    loss: str,
    labelled: pd.DataFrame | None = None,
    folder: Path | None = None,
    progress: bool = True,
    steps: int | None = None,
) -> dict[str, float]:
    """Train the small cross-encoder with ``loss`` on teacher scores; saved to ``rerankers/LOSS``.
    ``steps`` overrides ``reranker.schedule.steps`` (e.g. a budget that grows with the labelled data)."""
    cfg = run.config.relevance
    if steps is not None:
        cfg = updated(run.config, {"relevance": {"reranker": {"schedule": {"steps": steps}}}}).relevance
    labelled = label(run, progress) if labelled is None else labelled
    folder = folder or run.reranker_dir(loss)
    with run.timed(f"distil re-ranker ({folder.name})"):
        student = small_reranker(run)
        metrics = distill.distill_reranker(student, labelled, run.item_texts, loss, cfg, max_gain(run), progress)
        with atomic_directory(folder) as tmp:
            student.save_pretrained(str(tmp))
            provenance.write_record(tmp, *_reranker_inputs(run))
    result = {"pairs": len(labelled), "augmented_pairs": int((~labelled["judged"]).sum()), **metrics}
    run.update_json("relevance.json", {f"distillation/{folder.name}": result})
    return result


def cfg_losses(run: RunDir) -> list[str]:
    return list(run.config.relevance.reranker.losses)


def load_reranker(run: RunDir, name: str) -> CrossEncoder:
    """``teacher`` or a distilled re-ranker's loss name (or a folder path)."""
    if name == "teacher":
        return load_relevance_teacher(run)
    folder = Path(name) if Path(name).is_dir() else run.reranker_dir(name)
    if not (folder / "config.json").exists():
        raise StepMissingError(f"no re-ranker {name!r} in {folder}: run `harness relevance` first")
    return load_cross_encoder(str(folder), run.config.relevance.max_length)


def distill_bi_encoder(
    run: RunDir,
    loss: str,
    student_name: str | None = None,
    labelled: pd.DataFrame | None = None,
    progress: bool = True,
) -> dict:
    """Distil the cross-encoder teacher's scores into the bi-encoder student (its latest phase) with ``loss``,
    against the frozen teacher item embeddings; report its retrieval quality before and after."""
    cfg = run.config.relevance
    name = student_name or cfg.retriever or run.config.students[0].name
    phase = latest_phase(run, name)
    labelled = label(run, progress) if labelled is None else labelled
    run.index.check_space(run.teacher_space)
    student = load_student(run, name, phase)
    before = retrieval_metrics(run, student)
    items = item_embeddings(run, run.teacher, progress)
    item_rows = {item: i for i, item in enumerate(run.catalog["item_id"])}
    scale = 1.0 / run.config.student(name).refine.temperature
    with run.timed(f"distil bi-encoder {name} ({loss})"):
        metrics = distill.distill_bi_encoder(
            student, labelled, item_rows, items, loss, cfg, max_gain(run), scale, progress
        )
        with atomic_directory(run.bi_encoder_dir(name, loss)) as tmp:
            student_meta.save_student(
                student,
                tmp,
                student_meta.StudentMeta(
                    name=name,
                    kind=run.config.student(name).kind,
                    phase=f"{phase}+{loss}",
                    teacher_space=run.teacher_space,
                ),
            )
    after = retrieval_metrics(run, student)
    result = {"student": name, "from_phase": phase, "loss": loss, "before": before, "after": after, **metrics}
    run.update_json("relevance.json", {f"bi_encoder/{name}-{loss}": result})
    console.print(f"{name} + {loss}: retrieval NDCG@10 {before['ndcg@10']:.4f} -> {after['ndcg@10']:.4f}")
    return result


def retrieval_metrics(run: RunDir, encoder) -> dict[str, float]:
    """First-stage quality of ``encoder`` on the (capped) test queries, top-100 from the teacher's index."""
    qrels = _qrels(run)
    ids, _ = Searcher(encoder, run.index).search(list(qrels), 100)
    return evaluate_rankings(dict(zip(qrels, ids, strict=True)), qrels, _scale(run)).means


def _qrels(run: RunDir, split: str = "test") -> dict[str, dict[str, float]]:
    frame = run.split(split)
    qrels = qrels_from_judgments(frame["query"], frame["item_id"], frame["label"])
    return {q: qrels[q] for q in list(qrels)[: run.config.relevance.eval_queries]}


# evaluation ------------------------------------------------------------------------------------------------
def rerank_evaluation(
    run: RunDir,
    rerankers: dict[str, CrossEncoder] | None = None,
    latency: bool = True,
    progress: bool = True,
    split: Literal["test", "validation"] = "test",
) -> dict:
    """NDCG@10 etc. of the retriever's top-K on the test queries (or the validation queries, where choices
    between re-rankers are made), as retrieved and after each re-ranker, and the per-query latency of
    re-ranking K candidates (one query at a time, as online)."""
    cfg = run.config.relevance
    if rerankers is None:
        rerankers = {TEACHER_RERANKER: load_relevance_teacher(run)}
        rerankers |= {f"student ({loss})": load_reranker(run, loss) for loss in available_rerankers(run)}
    found = candidates(run, progress)
    qrels = _qrels(run, split)
    retrieved = {q: found[q] for q in qrels}
    scale = _scale(run)
    systems = {RETRIEVER_ONLY: _metrics(retrieved, qrels, scale, cfg.candidates_k)}
    timings = {}
    with run.timed("re-rank evaluation"), torch_threads(run.config.bench.threads):
        for name, model in rerankers.items():
            reranker = Reranker(model, run.item_texts)
            systems[name] = _metrics(reranker.rerank_many(retrieved, progress), qrels, scale, cfg.candidates_k)
            if latency:
                queries = list(qrels)[: cfg.latency_queries]
                stats = measure_latency(lambda q, r=reranker: r.rerank(q, retrieved[q]), queries, warmup=5)
                timings[name] = asdict(stats)
                systems[name]["latency_p50_ms"] = stats.p50_ms
                systems[name]["latency_p99_ms"] = stats.p99_ms
            console.print(f"{name}: NDCG@10 {systems[name]['ndcg@10']:.4f}")
    teacher_ndcg = systems.get(TEACHER_RERANKER, {}).get("ndcg@10")
    for values in systems.values():
        if teacher_ndcg:
            values["ndcg_recovery_%"] = recovery(values["ndcg@10"], teacher_ndcg)
    result = {
        "retriever": retriever_name(run),
        "k": cfg.candidates_k,
        "queries": len(qrels),
        "split": split,
        "threads": thread_info(),
        "systems": systems,
    }
    run.update_json("relevance.json", {"rerank" if split == "test" else f"rerank_{split}": result})
    return result


def _metrics(rankings: dict[str, list[str]], qrels, scale: RelevanceScale, k: int) -> dict[str, float]:
    return evaluate_rankings(rankings, qrels, scale, recall_k=k).means


def available_rerankers(run: RunDir) -> list[str]:
    root = run.relevance_dir / "rerankers"
    return sorted(p.name for p in root.iterdir() if (p / "config.json").exists()) if root.exists() else []


# the whole stage -------------------------------------------------------------------------------------------
def _teacher_inputs(run: RunDir) -> tuple[dict, dict]:
    retriever = run.config.relevance.retriever
    source = run.student_dir(retriever, latest_phase(run, retriever)) if retriever else run.teacher_dir
    return provenance.relevance_teacher_settings(run.config), {"retriever": provenance.recorded_fingerprint(source)}


def relevance_teacher_current(run: RunDir) -> bool:
    """Whether the relevance teacher on disk was made with the run's present settings and retriever (it says
    why not, when not)."""
    folder = run.relevance_teacher_dir
    present = (folder / "config.json").exists()
    return not provenance.must_redo("relevance teacher", folder, present, *_teacher_inputs(run), False)


def _reranker_inputs(run: RunDir) -> tuple[dict, dict]:
    teacher = provenance.recorded_fingerprint(run.relevance_teacher_dir)
    return provenance.reranker_settings(run.config), {"relevance teacher": teacher}


def relevance(run: RunDir, losses: list[str] | None = None, force: bool = False, progress: bool = True) -> dict:
    """Teacher, labelling, one distilled re-ranker per loss (and bi-encoder distillation if configured), then
    the re-ranking evaluation. Without ``force``, a teacher or re-ranker on disk is kept while the settings and
    inputs it was made with are unchanged."""
    if force or not relevance_teacher_current(run):
        relevance_teacher(run, progress)
    for loss in losses or cfg_losses(run):
        folder = run.reranker_dir(loss)
        if provenance.must_redo(
            f"re-ranker {loss}", folder, (folder / "config.json").exists(), *_reranker_inputs(run), force
        ):
            distill_reranker(run, loss, progress=progress)
    for loss in run.config.relevance.bi_encoder.losses:
        distill_bi_encoder(run, loss, progress=progress)
    return rerank_evaluation(run, progress=progress)


def rerank(run: RunDir, query: str, reranker: str = "teacher", k: int | None = None) -> list[tuple[str, float, str]]:
    """Retrieve the top-K for one query with the run's retriever, then re-rank it: (item id, score, text)."""
    cfg = run.config.relevance
    ids, _ = Searcher(retriever_encoder(run), run.index).search([query], k or cfg.candidates_k)
    ranked, scores = Reranker(load_reranker(run, reranker), run.item_texts).rerank(query, ids[0])
    return [(i, float(s), run.item_texts[i]) for i, s in zip(ranked, scores, strict=True)]

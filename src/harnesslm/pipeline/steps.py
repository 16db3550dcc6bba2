"""The recipe's steps. Each reads what earlier steps wrote in the run directory and writes its own output
atomically; the CLI subcommands and ``harness run`` call exactly these functions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harnesslm.atomic import atomic_directory
from harnesslm.config import RunConfig, StudentConfig
from harnesslm.data import load_catalog, load_judgments, load_queries, split_by_query
from harnesslm.index import build_item_index
from harnesslm.index.embeddings import cached_encode, encode
from harnesslm.index.item_index import ItemIndex
from harnesslm.models import students as student_models
from harnesslm.models.bundled import resolve_model
from harnesslm.pipeline.run_dir import RunDir, StepMissingError, console
from harnesslm.training.align import align_student, fit_projection
from harnesslm.training.negatives import mine_negatives
from harnesslm.training.refine import refine_student, refinement_dataset
from harnesslm.training.teacher import contrastive_dataset, fine_tune_teacher, positive_pairs

if TYPE_CHECKING:
    from harnesslm.index.milvus_index import MilvusItemIndex

logger = logging.getLogger(__name__)


# prepare ---------------------------------------------------------------------------------------------------
def prepare(config: RunConfig, root: Path) -> RunDir:
    """Load and validate the user's files, split by query, write ``data/`` and the resolved config."""
    run = RunDir(root, config)
    with run.timed("prepare"):
        data = config.data
        catalog = load_catalog(
            data.catalog.path,
            data.catalog.id_column,
            data.catalog.text_column,
            data.catalog.format,
            fields=data.catalog.fields,
        )
        judgments = load_judgments(
            data.judgments.path,
            set(catalog["item_id"]),
            data.judgments.query_column,
            data.judgments.item_column,
            data.judgments.label_column,
            data.judgments.format,
        )
        splits = split_by_query(judgments, tuple(data.split), seed=data.seed)
        pool = list(dict.fromkeys(splits["train"]["query"]))
        held_out = set(splits["validation"]["query"]) | set(splits["test"]["query"])
        for source in data.extra_queries:
            extra = load_queries(source.path, source.query_column, source.format)
            pool.extend(q for q in extra if q not in held_out)  # never align on held-out queries
        pool = list(dict.fromkeys(pool))
        with atomic_directory(run.data_dir) as tmp:
            catalog.to_parquet(tmp / "catalog.parquet", index=False)
            for name, frame in splits.items():
                frame.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
            (tmp / "query_pool.json").write_text(json.dumps(pool), encoding="utf-8")
        run.save_config()
        sizes = {name: int(frame["query"].nunique()) for name, frame in splits.items()}
        run.update_json(
            "data.json",
            {"items": len(catalog), "judgments": len(judgments), "queries": sizes, "query_pool": len(pool)},
        )
        console.print(
            f"{len(catalog):,} items, {len(judgments):,} judgments, queries per split {sizes}, "
            f"alignment pool {len(pool):,} queries"
        )
    return run


# teacher ---------------------------------------------------------------------------------------------------
def teacher(run: RunDir, progress: bool = True) -> dict[str, float]:
    """Phase 1: fine-tune the teacher with in-batch and mined hard negatives; save it to ``teacher/``."""
    cfg = run.config.teacher
    with run.timed("teacher"):
        model = run.base_teacher
        metrics: dict[str, float] = {}
        if cfg.enabled and cfg.max_steps > 0:
            pairs = positive_pairs(run.split("train"), run.config.data.relevant_at)
            base_items = item_embeddings(run, model, progress)
            base_index = ItemIndex.build(base_items, run.catalog["item_id"].tolist(), space="base")
            queries = list(dict.fromkeys(pairs.queries))
            query_emb = encode(model, queries, batch_size=128)
            mined = dict(
                zip(
                    queries,
                    mine_negatives(
                        queries,
                        query_emb,
                        base_index,
                        pairs.positives_by_query,
                        cfg.hard_negatives,
                        cfg.negatives_from_rank,
                        cfg.negatives_to_rank,
                        cfg.seed,
                    ),
                    strict=True,
                )
            )
            dataset = contrastive_dataset(
                pairs.queries,
                pairs.positives,
                [mined[q] for q in pairs.queries],
                run.item_texts,
                cfg.hard_negatives,
            )
            console.print(
                f"fine-tuning on {len(dataset):,} (query, positive, {cfg.hard_negatives} negatives) "
                f"rows for {cfg.max_steps} steps"
            )
            metrics = fine_tune_teacher(model, dataset, cfg, progress)
        if _is_main_process():  # under torchrun/accelerate every rank trains; one writes
            with atomic_directory(run.teacher_dir) as tmp:
                model.save(str(tmp))
        run.forget("teacher", "teacher_space", "index", "base_teacher")
    return metrics


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def item_embeddings(run: RunDir, model, progress: bool = True) -> np.ndarray:
    """The catalog encoded by ``model``, read from the embedding cache when this exact model did it before.

    With ``index.encode_workers > 1`` a miss is encoded in resumable shards on that many processes (or Ray
    actors); the result fills the same cache file.
    """
    cfg = run.config.index
    if cfg.encode_workers > 1:
        from harnesslm.index.sharded_encoding import sharded_cached_encode

        return sharded_cached_encode(
            model,
            run.catalog["text"].tolist(),
            run.cache_dir,
            workers=cfg.encode_workers,
            shard_size=cfg.shard_size,
            batch_size=cfg.encode_batch_size,
            executor=cfg.encode_executor,
            progress=progress,
        )
    return cached_encode(
        model,
        run.catalog["text"].tolist(),
        run.cache_dir,
        batch_size=cfg.encode_batch_size,
        progress=progress,
    )


# index -----------------------------------------------------------------------------------------------------
def build_index(run: RunDir, progress: bool = True) -> ItemIndex | MilvusItemIndex:
    """Encode the catalog once with the teacher (cached) and build the index in ``index/`` (FAISS, or Milvus
    with ``index.kind: milvus``, in which case ``index/`` only describes the collection)."""
    with run.timed("index"):
        embeddings = item_embeddings(run, run.teacher, progress)
        built = build_item_index(
            embeddings, run.catalog["item_id"].tolist(), run.teacher_space, run.config.index, run.index_dir, progress
        )
        run.forget("index")
        console.print(f"{built.meta.kind} index over {built.meta.size:,} items ({built.meta.dim}-d)")
    return built


# align -----------------------------------------------------------------------------------------------------
def align(run: RunDir, names: list[str] | None = None, progress: bool = True) -> dict[str, dict]:
    """Phase 2: build each student and align it to the teacher's query embeddings over the query pool."""
    results = {}
    with run.timed("align"):
        teacher_model = run.teacher
        pool = run.query_pool()
        targets = encode(teacher_model, pool, batch_size=128)
        teacher_dim = targets.shape[1]
        table = None
        for cfg in run.students(names):
            if cfg.kind == "static":
                if table is None:
                    table = distill_static_baseline(run, cfg)
                student = student_models.static_student(_copy_table(table), teacher_dim)
            else:
                base = (
                    student_models.load_model(resolve_model(cfg.base, run.config.cache_dir))
                    if cfg.base
                    else student_models.load_model(str(run.teacher_dir))
                )
                student = student_models.truncated_student(base, cfg.layers, teacher_dim, cfg.max_seq_length)
            fit_mse = fit_projection(student, pool, targets)
            metrics = align_student(student, pool, targets, cfg, progress)
            save_student(run, student, cfg, "aligned")
            results[cfg.name] = {"projection_fit_mse": fit_mse, **metrics}
            console.print(f"student {cfg.name!r} aligned on {len(pool):,} queries")
    return results


def distill_static_baseline(run: RunDir, cfg: StudentConfig):
    """model2vec-distil the teacher once; save the untrained static model as a baseline; return its table."""
    table = student_models.distill_static(run.teacher, cfg.pca_dims)
    with atomic_directory(run.static_baseline_dir) as tmp:
        student_models.save_student(
            student_models.static_model(table),
            tmp,
            {"kind": "static", "phase": "untrained", "teacher_space": None},
        )
    return table


def _copy_table(table):
    """A fresh StaticEmbedding with its own weights, so training one student leaves the baseline intact."""
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    return StaticEmbedding(table.tokenizer, embedding_weights=table.embedding.weight.detach().clone())


def save_student(run: RunDir, student, cfg: StudentConfig, phase: str) -> None:
    with atomic_directory(run.student_dir(cfg.name, phase)) as tmp:
        student_models.save_student(
            student,
            tmp,
            {
                "name": cfg.name,
                "kind": cfg.kind,
                "phase": phase,
                "teacher_space": run.teacher_space,
                "teacher_dim": student_models.embedding_dim(student),
            },
        )


def load_student(run: RunDir, name: str, phase: str):
    folder = run.student_dir(name, phase)
    if not (folder / "modules.json").exists():
        raise StepMissingError(f"no {phase} student {name!r} in {folder}: run `harness {_step_of(phase)}` first")
    return student_models.load_model(str(folder))


def _step_of(phase: str) -> str:
    return {"aligned": "align", "refined": "refine"}.get(phase, phase)


# refine ----------------------------------------------------------------------------------------------------
def refine(run: RunDir, names: list[str] | None = None, progress: bool = True) -> dict[str, dict]:
    """Phase 3: contrastive training of each aligned student against the frozen teacher item embeddings."""
    results = {}
    with run.timed("refine"):
        pairs = positive_pairs(run.split("train"), run.config.data.relevant_at)
        queries = list(dict.fromkeys(pairs.queries))
        query_rows = {q: i for i, q in enumerate(queries)}
        item_rows = {item: i for i, item in enumerate(run.catalog["item_id"])}
        targets = encode(run.teacher, queries, batch_size=128)
        items = item_embeddings(run, run.teacher, progress)
        index_ = run.index
        index_.check_space(run.teacher_space)
        for cfg in run.students(names):
            negatives = mine_negatives(
                queries,
                targets,
                index_,
                pairs.positives_by_query,
                cfg.refine_hard_negatives,
                run.config.teacher.negatives_from_rank,
                run.config.teacher.negatives_to_rank,
                cfg.seed,
            )
            by_query = dict(zip(queries, negatives, strict=True))
            dataset = refinement_dataset(
                pairs.queries,
                pairs.positives,
                [by_query[q] for q in pairs.queries],
                query_rows,
                item_rows,
                cfg.refine_hard_negatives,
            )
            student = load_student(run, cfg.name, "aligned")
            metrics = refine_student(student, dataset, items, targets, cfg, progress)
            save_student(run, student, cfg, "refined")
            results[cfg.name] = metrics
            console.print(f"student {cfg.name!r} refined on {len(dataset):,} pairs")
    return results


def latest_phase(run: RunDir, name: str) -> str:
    for phase in ("refined", "aligned"):
        if (run.student_dir(name, phase) / "modules.json").exists():
            return phase
    raise StepMissingError(f"student {name!r} has not been trained: run `harness align` first")


def judged_queries(run: RunDir, path: Path | None, **columns) -> pd.DataFrame:
    """The test split, or any judged query file the user names (read with the same column options)."""
    if path is None:
        return run.split("test")
    return load_judgments(path, set(run.catalog["item_id"]), **columns)

"""The recipe's steps. Each reads what earlier steps wrote in the run directory and writes its own output
atomically; the CLI subcommands and ``harness run`` call exactly these functions.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.progress import track

from harnesslm.alignment.pool import (
    AlignmentPool,
    PoolSource,
    cache_key,
    cached_mapping,
    cached_texts,
    encodes_alike,
    merge_sources,
    take,
    with_repeated,
)
from harnesslm.alignment.pseudo_queries import pseudo_queries
from harnesslm.atomic import atomic_directory, write_text
from harnesslm.config import RunConfig, StaticStudentConfig
from harnesslm.data import limit_queries, load_catalog, load_judgments, load_queries, split_by_query
from harnesslm.data.checks import check_labels, check_positives
from harnesslm.distill import ItemSpace, align_selected, build_student, kept_line, refine_selected
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.metrics import RelevanceScale, qrels_from_judgments
from harnesslm.index import build_item_index
from harnesslm.index.item_index import ItemIndex
from harnesslm.models import students as student_models
from harnesslm.models.bundled import resolve_model
from harnesslm.models.fingerprint import model_fingerprint, texts_fingerprint
from harnesslm.models.shop_tokens import TABLE_VERSION
from harnesslm.models.vocabulary import domain_vocabulary
from harnesslm.models.word_starts import with_word_starts
from harnesslm.run import provenance
from harnesslm.run.catalog_embeddings import encoded_texts, item_cache_path, item_embeddings
from harnesslm.run.provenance import step_inputs
from harnesslm.run.run_dir import RunDir, StepMissingError, console
from harnesslm.run.student_store import load_student, save_student
from harnesslm.training.negatives import mine_lexical_negatives, mine_negatives
from harnesslm.training.selection import ValidationScorer
from harnesslm.training.teacher_finetune import contrastive_dataset, fine_tune_teacher, positive_pairs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

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
        for warning in check_labels(
            judgments, data.judgments.path, data.label_offset, data.relevant_at, data.label_max
        ):
            console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        splits = split_by_query(judgments, tuple(data.split), seed=data.seed)
        splits["train"] = limit_queries(splits["train"], data.max_train_queries, seed=data.seed)
        check_positives(splits, tuple(data.split), len(catalog), data.judgments.path, data.relevant_at)
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
        if cfg.enabled and cfg.schedule.steps > 0:
            pairs = positive_pairs(run.split("train"), run.config.data.relevant_at)
            queries = list(dict.fromkeys(pairs.queries))
            negatives = hard_negatives(run, model, queries, pairs.positives_by_query, progress)
            mined = dict(zip(queries, negatives, strict=True))
            dataset = contrastive_dataset(
                pairs.queries,
                pairs.positives,
                [mined[q] for q in pairs.queries],
                run.item_texts,
                cfg.hard_negatives,
            )
            console.print(
                f"fine-tuning on {len(dataset):,} (query, positive, {cfg.hard_negatives} negatives) "
                f"rows for {cfg.schedule.steps_for(len(dataset))} steps"
            )
            metrics = fine_tune_teacher(model, dataset, cfg, progress)
        if _is_main_process():  # under torchrun/accelerate every rank trains; one writes
            with atomic_directory(run.teacher_dir) as tmp:
                model.save(str(tmp))
                provenance.write_record(tmp, *step_inputs(run, "teacher"))
        run.loaded.teacher_rewritten()
    return metrics


def hard_negatives(run: RunDir, model, queries: list[str], positives: dict[str, set[str]], progress: bool = True):
    """``teacher.hard_negatives`` item ids per query, mined by ``teacher.negatives_from``: BM25 over the catalog
    texts (its index is the run's lexical index, built once), the off-the-shelf teacher's own index (a catalog
    pass with ``model``, cached), or a static table distilled from ``model`` (seconds)."""
    cfg = run.config.teacher
    ranks = {"n": cfg.hard_negatives, "from_rank": cfg.negatives_from_rank, "to_rank": cfg.negatives_to_rank}
    if cfg.hard_negatives <= 0:
        return [[] for _ in queries]
    if cfg.negatives_from == "bm25":
        mined, topped_up = mine_lexical_negatives(
            queries, run.lexical_index, positives, **ranks, seed=cfg.schedule.seed
        )
        if topped_up:
            hint = " (teacher.negatives_from: teacher mines them densely)" if topped_up > len(queries) // 10 else ""
            console.print(
                f"[yellow]BM25 found too few candidates for {topped_up:,} of {len(queries):,} training queries; "
                f"their hard negatives were topped up with random items{hint}[/yellow]",
                soft_wrap=True,
            )
        return mined
    if cfg.negatives_from == "static":
        # model2vec's table of the untrained teacher (only the tokens the shop uses): a dense ranking of the catalog
        # in seconds, where the teacher's own pass takes minutes to hours
        table = student_models.distill_static(model, None, None, shop_texts(run))
        model = student_models.static_model(table)
        items = encode(model, run.catalog["text"].tolist(), batch_size=1024, role="document")
        query_emb = encode(model, queries, batch_size=1024, role="query")
    else:
        items = item_embeddings(run, model, progress)
        query_emb = encoded_texts(run, model, queries, "query", 128, progress)
    base_index = ItemIndex.build(items, run.catalog["item_id"].tolist(), space="base")
    return mine_negatives(queries, query_emb, base_index, positives, **ranks, seed=cfg.schedule.seed)


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


# index -----------------------------------------------------------------------------------------------------
def build_index(run: RunDir, progress: bool = True, refresh: bool = False) -> ItemIndex | MilvusItemIndex:
    """Encode the catalog once with the teacher (cached) and build the index in ``index/`` (FAISS, or Milvus
    with ``index.kind: milvus``, in which case ``index/`` only describes the collection). ``refresh`` drops the
    cached catalog embeddings of this teacher first, so they are encoded again."""
    with run.timed("index"):
        if refresh:
            item_cache_path(run, run.teacher).unlink(missing_ok=True)
        embeddings = item_embeddings(run, run.teacher, progress)
        built = build_item_index(
            embeddings,
            run.catalog["item_id"].tolist(),
            run.teacher_space,
            run.config.index,
            run.index_dir,
            progress,
            texts=run.catalog["text"].tolist(),
        )
        provenance.write_record(run.index_dir, *step_inputs(run, "index"))
        run.loaded.index_rewritten()
        console.print(f"{built.meta.kind} index over {built.meta.size:,} items ({built.meta.dim}-d)")
    return built


# align -----------------------------------------------------------------------------------------------------
def align(run: RunDir, names: list[str] | None = None, progress: bool = True) -> dict[str, dict]:
    """Phase 2: build each student and align it to the teacher's query embeddings over the alignment pool.

    Each student starts from a closed-form fit of its projection; gradient alignment then keeps whichever
    state scores best on the validation queries (the start included), so it never ends worse than it began,
    and stops once validation stops improving (``selection.patience``). The work is
    :func:`harnesslm.distill.align_selected`, which ``distill_query_encoder`` runs too.
    """
    results = {}
    with run.timed("align"):
        teacher_model = run.teacher
        pool = alignment_pool(run, teacher_model, progress)
        run.update_json("pool.json", {"size": len(pool), "sources": pool.sources})
        teacher_dim = pool.targets.shape[1]
        scorer = validation_scorer(run)
        tables: dict[tuple, object] = {}  # one distilled table per (base, width, words, tokens distilled)
        for cfg in run.students(names):
            table = base = None
            if cfg.kind == "static":
                table_key = (cfg.base, cfg.pca_dims, cfg.domain_vocabulary, cfg.distill_tokens)
                if table_key not in tables:
                    tables[table_key] = distill_static_baseline(run, cfg)
                table = tables[table_key]
            elif cfg.base:
                base = student_models.load_model(resolve_model(cfg.base, run.config.cache_dir))
            corpus = shop_texts(run) if cfg.kind == "static" and cfg.phrases else ()
            student = build_student(cfg, teacher_model, teacher_dim, table=table, base=base, corpus=corpus)
            items = item_embeddings(run, teacher_model, progress) if cfg.align.score_weight > 0 else None
            kept = align_selected(
                student,
                cfg,
                pool.texts,
                pool.targets,
                scorer,
                run.config.selection,
                progress,
                say=console.print,
                items=items,
            )
            fit_mse = kept.pop("projection_fit_mse")
            save_student(run, student, cfg, "aligned", selection=kept)
            results[cfg.name] = {"projection_fit_mse": fit_mse, **kept}
            _record_selection(run, cfg.name, "aligned", kept)
            console.print(f"student {cfg.name!r} aligned on {len(pool):,} texts; {kept_line(kept)}")
        _record_untrained_baseline(run, scorer)
    return results


def validation_scorer(run: RunDir) -> ValidationScorer | None:
    """Scores a student on the validation queries against the teacher's index (None when selection is off)."""
    cfg = run.config.selection
    frame = run.split("validation")
    if not cfg.enabled or frame.empty:
        return None
    qrels = qrels_from_judgments(frame["query"], frame["item_id"], frame["label"])
    queries = list(qrels)[: cfg.max_queries]
    index_ = run.index
    index_.check_space(run.teacher_space)
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    return ValidationScorer(queries, qrels, index_, scale)


def _record_selection(run: RunDir, name: str, phase: str, selection: dict) -> None:
    """What each phase kept and why, in ``selection.json`` (read by the report)."""
    record = run.read_json("selection.json")
    record.setdefault("students", {}).setdefault(name, {})[phase] = selection
    run.update_json("selection.json", record)


def _record_untrained_baseline(run: RunDir, scorer: ValidationScorer | None) -> None:
    """Validation NDCG@10 of the untrained static model on its own index: the floor a student must beat."""
    if scorer is None or not (run.static_baseline_dir / "modules.json").exists():
        return
    static = student_models.load_model(str(run.static_baseline_dir))
    own = ItemIndex.build(item_embeddings(run, static, progress=False), run.catalog["item_id"].tolist(), "static")
    own_scorer = ValidationScorer(scorer.queries, scorer.qrels, own, scorer.scale)
    run.update_json("selection.json", {"static_untrained_own_index_validation_ndcg@10": own_scorer(static)})


# the alignment pool ----------------------------------------------------------------------------------------
def alignment_pool(run: RunDir, teacher_model, progress: bool = True) -> AlignmentPool:
    """Every alignment text with its teacher query embedding, from the sources ``pool:`` enables.

    Sources, in order (an earlier one wins a duplicated text): training queries, the unlabeled query files,
    catalog texts, pseudo-queries cut from the catalog, synthetic queries from a small language model.
    Held-out queries never enter. Generated texts and teacher embeddings are cached on disk.
    """
    cfg = run.config.pool
    train = list(dict.fromkeys(run.split("train")["query"]))
    held_out = set(run.split("validation")["query"]) | set(run.split("test")["query"])
    extra = [q for q in run.query_pool() if q not in set(train)]
    sources = [
        _encoded_source(run, teacher_model, "train_queries", train if cfg.train_queries else [], progress),
        _encoded_source(run, teacher_model, "extra_queries", take(extra, cfg.extra_queries, cfg.seed), progress),
        _catalog_source(run, teacher_model, progress),
    ]
    if cfg.pseudo_queries != 0:
        sources.append(_pseudo_source(run, teacher_model, progress))
    if cfg.synthetic_items:
        sources.append(_synthetic_source(run, teacher_model, progress))
    pool = with_repeated(merge_sources(sources, held_out), "train_queries", cfg.train_queries_weight)
    if not len(pool):
        raise StepMissingError("the alignment pool is empty: enable at least one source under `pool:`")
    console.print(
        f"alignment pool: {len(pool):,} texts ("
        + ", ".join(f"{name} {s['kept']:,}" for name, s in pool.sources.items() if s["offered"])
        + ")"
    )
    return pool


def _encoded_source(run: RunDir, teacher_model, name: str, texts: list[str], progress: bool, **kw) -> PoolSource:
    """A source whose texts the teacher encodes as queries (cached by teacher weights and texts)."""
    start = time.perf_counter()
    targets = (
        encoded_texts(run, teacher_model, texts, "query", batch_size=128, progress=progress)
        if texts
        else np.zeros((0, 0), dtype=np.float32)
    )
    return PoolSource(name, texts, targets, encode_seconds=time.perf_counter() - start, **kw)


def _catalog_source(run: RunDir, teacher_model, progress: bool) -> PoolSource:
    """Catalog texts as alignment pairs: the index's item embeddings are their targets when the teacher encodes
    queries and items alike; otherwise the teacher encodes the texts as queries."""
    cfg = run.config.pool
    rows = take(range(len(run.catalog)), cfg.catalog_texts, cfg.seed)
    texts = [run.catalog["text"].iloc[r] for r in rows]
    if not encodes_alike(teacher_model):
        return _encoded_source(run, teacher_model, "catalog_texts", texts, progress)
    start = time.perf_counter()
    targets = item_embeddings(run, teacher_model, progress)[rows] if rows else np.zeros((0, 0), np.float32)
    return PoolSource(
        "catalog_texts", texts, targets, encode_seconds=time.perf_counter() - start, notes={"targets": "index"}
    )


def _pseudo_source(run: RunDir, teacher_model, progress: bool) -> PoolSource:
    """Pseudo-queries cut from every catalog text (cached), of which ``pool.pseudo_queries`` are used."""
    cfg = run.config.pool
    titles = run.catalog["text"].tolist()
    key = cache_key("pseudo-v1", texts_fingerprint(titles), cfg.pseudo_per_item, cfg.seed)
    start = time.perf_counter()
    texts, _ = cached_texts(
        _pool_cache(run) / f"pseudo-{key}.json", lambda: pseudo_queries(titles, cfg.pseudo_per_item, cfg.seed)
    )
    generated = time.perf_counter() - start
    source = _encoded_source(run, teacher_model, "pseudo_queries", take(texts, cfg.pseudo_queries, cfg.seed), progress)
    source.generate_seconds = generated
    return source


def _synthetic_source(run: RunDir, teacher_model, progress: bool) -> PoolSource:
    """Queries a small language model writes for ``pool.synthetic_items`` catalog items, few-shot from the
    training judgments. Generations are cached per item, so a larger amount only writes the new items."""
    from harnesslm.alignment.synthetic_queries import QueryWriter, locate_smollm2

    cfg = run.config.pool
    titles = take(run.catalog["text"].tolist(), cfg.synthetic_items, cfg.seed)
    train = run.split("train")
    texts_by_item = run.item_texts
    examples = [(q, texts_by_item[i]) for q, i in zip(train["query"], train["item_id"], strict=True)]
    relevance = train["label"].astype(float).tolist()
    model_path = locate_smollm2()
    key = cache_key(
        "synthetic-v1",
        model_path.name,
        model_path.stat().st_size,
        texts_fingerprint([f"{q}\t{t}" for q, t in examples]),
        cfg.synthetic_per_item,
        cfg.synthetic_backend,
        cfg.seed,
    )
    path = _pool_cache(run) / f"synthetic-{key}.json"
    written = cached_mapping(path)
    missing = [t for t in dict.fromkeys(titles) if t not in written]
    start = time.perf_counter()
    if missing:
        writer = QueryWriter(
            examples, backend=cfg.synthetic_backend, relevance=relevance, seed=cfg.seed, n_threads=cfg.synthetic_threads
        )
        for done, title in enumerate(track(missing, description="synthetic queries", disable=not progress), 1):
            written[title] = writer.write(title, cfg.synthetic_per_item)
            if done % 200 == 0 or done == len(missing):  # checkpoint: an interrupted run keeps what it wrote
                write_text(path, json.dumps(written))
    generated = time.perf_counter() - start
    texts = list(dict.fromkeys(q for t in titles for q in written.get(t, [])))
    notes = {"items": len(titles), "items_written_now": len(missing)}
    source = _encoded_source(run, teacher_model, "synthetic_queries", texts, progress, notes=notes)
    source.generate_seconds = generated
    return source


def _pool_cache(run: RunDir) -> Path:
    return run.cache_dir.parent / "pool"


def distill_static_baseline(run: RunDir, cfg: StaticStudentConfig):
    """model2vec-distil the table's source (the teacher, or ``cfg.base``) once; save the untrained static model
    as a baseline; return its table.

    The table is cached on disk keyed by the source's weights, ``pca_dims`` and the domain vocabulary:
    distilling passes the whole vocabulary through the source (minutes for a large one), and a rerun of
    alignment should not pay again. The baseline (``static-untrained``) is the teacher's own table when the run
    has one, so a student with another ``base`` does not replace it.
    """
    source = static_source(run, cfg)
    vocabulary = static_vocabulary(run, cfg, source)
    key = f"{run.teacher_space if cfg.base is None else model_fingerprint(source)}-pca{cfg.pca_dims}"
    if vocabulary:
        key += f"-vocab{len(vocabulary)}-{texts_fingerprint(vocabulary)[:12]}-v{TABLE_VERSION}"
    texts = shop_texts(run) if cfg.distill_tokens == "shop" else None
    if texts is not None:
        key += f"-shop{TABLE_VERSION}-{texts_fingerprint(texts)[:12]}"
    cached = run.cache_dir.parent / "static" / key
    if (cached / "modules.json").exists():
        table = student_models.load_model(str(cached))[0]
        # a full table cached before first words were read as word starts: same rows, tokenizer brought up to date
        table.tokenizer = with_word_starts(table.tokenizer)
    else:
        table = student_models.distill_static(source, cfg.pca_dims, vocabulary, texts)
        with atomic_directory(cached) as tmp:
            student_models.static_model(table).save(str(tmp))
    if cfg.base is None or not (run.static_baseline_dir / "modules.json").exists():
        with atomic_directory(run.static_baseline_dir) as tmp:
            student_models.save_student(
                student_models.static_model(table),
                tmp,
                student_models.StudentMeta(kind="static", phase="untrained"),
            )
    return table


def static_source(run: RunDir, cfg: StaticStudentConfig) -> SentenceTransformer:
    """The model a static student's table is distilled from: ``cfg.base``, else the fine-tuned teacher."""
    if cfg.base is None:
        return run.teacher
    return student_models.load_model(resolve_model(cfg.base, run.config.cache_dir))


def static_vocabulary(run: RunDir, cfg: StaticStudentConfig, source: SentenceTransformer | None = None) -> list[str]:
    """The shop's own words a static student gets as whole tokens (from training queries and catalog texts),
    for the tokenizer of its table's ``source`` (default: the teacher)."""
    if not cfg.domain_vocabulary:
        return []
    texts = [*run.split("train")["query"].drop_duplicates(), *run.catalog["text"]]
    return domain_vocabulary((source or run.teacher).tokenizer, texts, cfg.domain_vocabulary)


def shop_texts(run: RunDir) -> list[str]:
    """The texts whose tokens a ``distill_tokens: shop`` table keeps: the query pool (training and extra
    queries) and the catalog; never validation or test queries."""
    return list(dict.fromkeys([*run.query_pool(), *run.catalog["text"]]))


# refine ----------------------------------------------------------------------------------------------------
def refine(run: RunDir, names: list[str] | None = None, progress: bool = True) -> dict[str, dict]:
    """Phase 3: contrastive training of each aligned student against the frozen teacher item embeddings.

    The refined student is the best of the aligned student and the refinement checkpoints on validation
    NDCG@10: when refinement does not help, the aligned weights are kept (and saved as ``refined``). The work
    is :func:`harnesslm.distill.refine_selected`.
    """
    results = {}
    with run.timed("refine"):
        pairs = positive_pairs(run.split("train"), run.config.data.relevant_at)
        queries = list(dict.fromkeys(pairs.queries))
        targets = encoded_texts(run, run.teacher, queries, "query", 128, progress)  # cached: reruns skip it
        items = ItemSpace(run.catalog["item_id"].tolist(), item_embeddings(run, run.teacher, progress))
        index_ = run.index
        index_.check_space(run.teacher_space)
        scorer = validation_scorer(run)
        ranks = (run.config.teacher.negatives_from_rank, run.config.teacher.negatives_to_rank)
        for cfg in run.students(names):
            student = load_student(run, cfg.name, "aligned")
            metrics, selection, n_pairs = refine_selected(
                student,
                cfg,
                pairs.queries,
                pairs.positives,
                queries,
                targets,
                items,
                index_,
                scorer,
                run.config.selection,
                ranks,
                progress,
            )
            save_student(run, student, cfg, "refined", selection=selection)
            _record_selection(run, cfg.name, "refined", selection)
            results[cfg.name] = {**metrics, **selection}
            console.print(f"student {cfg.name!r} refined on {n_pairs:,} pairs; {kept_line(selection)}")
    return results

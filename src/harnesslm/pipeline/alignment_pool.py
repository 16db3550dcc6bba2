"""The alignment pool of a run: its sources (training queries, unlabeled queries, catalog texts,
pseudo-queries, synthetic queries) with their teacher query embeddings, cached on disk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.progress import Progress, track

from harnesslm.atomic import write_text
from harnesslm.models.fingerprint import texts_fingerprint
from harnesslm.pool.pseudo_queries import pseudo_queries
from harnesslm.pool.sources import (
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
from harnesslm.run.catalog_embeddings import encoded_texts, item_embeddings
from harnesslm.run.run_dir import RunDir, StepMissingError, console


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
    from harnesslm.pool.synthetic_queries import locate_smollm2

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
        settings = {
            "backend": cfg.synthetic_backend,
            "relevance": relevance,
            "seed": cfg.seed,
            "n_threads": cfg.synthetic_threads,
        }
        for done in _written(missing, examples, cfg.synthetic_per_item, settings, cfg, progress, written):
            if done % 200 == 0 or done == len(missing):  # checkpoint: an interrupted run keeps what it wrote
                write_text(path, json.dumps(written))
    generated = time.perf_counter() - start
    texts = list(dict.fromkeys(q for t in titles for q in written.get(t, [])))
    notes = {"items": len(titles), "items_written_now": len(missing)}
    source = _encoded_source(run, teacher_model, "synthetic_queries", texts, progress, notes=notes)
    source.generate_seconds = generated
    return source


def _written(
    titles: list[str], examples: list, per_item: int, settings: dict, cfg, progress: bool, into: dict
) -> Iterator[int]:
    """Write each title's queries into ``into`` (here, or on Ray actors with ``pool.synthetic_executor: ray``),
    yielding how many titles are done after each one (Ray: each chunk)."""
    if cfg.synthetic_executor == "ray":
        from harnesslm.pool.ray_writers import write_on_ray

        chunks = write_on_ray(titles, examples, per_item, workers=cfg.synthetic_workers, **settings)
        with Progress(disable=not progress) as bar:
            task = bar.add_task(f"synthetic queries (Ray, {cfg.synthetic_workers} actors)", total=len(titles))
            for chunk in chunks:
                into.update(chunk)
                bar.advance(task, len(chunk))
                yield int(bar.tasks[0].completed)
        return
    from harnesslm.pool.synthetic_queries import QueryWriter

    writer = QueryWriter(examples, **settings)
    for done, title in enumerate(track(titles, description="synthetic queries", disable=not progress), 1):
        into[title] = writer.write(title, per_item)
        yield done


def _pool_cache(run: RunDir) -> Path:
    return run.cache_dir.parent / "pool"

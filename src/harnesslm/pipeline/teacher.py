"""Phase 1, the teacher step: mine hard negatives, fine-tune the teacher contrastively, save ``teacher/``."""

from __future__ import annotations

import numpy as np

from harnesslm.atomic import atomic_directory
from harnesslm.encoding.cache import encode
from harnesslm.index.item_index import ItemIndex
from harnesslm.losses.graph_regularized import item_neighbors
from harnesslm.pipeline.relevance import train_relevance_teacher
from harnesslm.pipeline.static_table import shop_texts
from harnesslm.rerank.models import load_cross_encoder, score_pairs
from harnesslm.run import provenance
from harnesslm.run.catalog_embeddings import encoded_texts, item_embeddings
from harnesslm.run.provenance import step_inputs
from harnesslm.run.run_dir import RunDir, console
from harnesslm.students import static as static_students
from harnesslm.training.negatives import mine_lexical_negatives, mine_negatives
from harnesslm.training.teacher_finetune import (
    contrastive_dataset,
    fine_tune_teacher,
    pair_columns,
    positive_pairs,
    with_margins,
)


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
            neighbors = None
            if cfg.graph_regularizer.weight > 0:  # RAMEN: each positive's neighbour in the judgments' graph
                neighbors = item_neighbors(pairs.positives_by_query, pairs.positives, cfg.schedule.seed)
            dataset = contrastive_dataset(
                pairs.queries,
                pairs.positives,
                [mined[q] for q in pairs.queries],
                run.item_texts,
                cfg.hard_negatives,
                neighbors,
            )
            if cfg.cross_encoder_labels.weight > 0:  # the Walmart recipe: a cross-encoder's margins on the rows
                labeller = labeller_path(run, model, queries, progress)
                dataset = cross_encoder_labelled(run, dataset, labeller, progress)
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


LABELLER_DIR = "teacher-labeller"
"""Where the teacher step keeps the cross-encoder it trains to label its rows (``cross_encoder_labels.model``
unset)."""


def labeller_path(run: RunDir, model, queries: list[str], progress: bool = True) -> str:
    """The cross-encoder that labels the teacher's rows: ``teacher.cross_encoder_labels.model``, or, when unset,
    one trained here with the ``relevance.teacher`` settings on the training judgments, its negatives drawn from
    the ranking that mines the teacher's hard negatives (``teacher.negatives_from``, top
    ``relevance.candidates_k``). It is kept in ``teacher-labeller/`` while its settings are unchanged."""
    labels = run.config.teacher.cross_encoder_labels
    if labels.model is not None:
        return labels.model
    folder = run.root / LABELLER_DIR
    record = (labeller_settings(run), {})
    if provenance.must_redo("teacher's labeller", folder, (folder / "config.json").exists(), *record, False):
        ranking = catalog_ranking(run, model, queries, run.config.relevance.candidates_k, progress)
        with run.timed("teacher's labeller"):
            train_relevance_teacher(run, dict(zip(queries, ranking, strict=True)), folder, record, progress)
    return str(folder)


def labeller_settings(run: RunDir) -> dict:
    """What the teacher step's own labeller depends on: the data, the relevance teacher's settings and the ranker
    its negatives come from."""
    relevance = provenance.relevance_teacher_settings(run.config)
    ranker = run.config.teacher.model_dump(mode="json", include={"model", "negatives_from", "query_prompt"})
    return relevance | {"ranker": ranker}


def cross_encoder_labelled(run: RunDir, dataset, labeller: str, progress: bool = True):
    """``dataset`` with the margins of the cross-encoder ``labeller`` as its label: each distinct (query, item)
    pair of its rows is scored once."""
    cfg = run.config.teacher.cross_encoder_labels
    scorer = load_cross_encoder(labeller, run.config.relevance.max_length, run.config.cache_dir)
    queries, texts = pair_columns(dataset)
    distinct = list(dict.fromkeys(zip(queries, texts, strict=True)))
    console.print(f"cross-encoder labels: scoring {len(distinct):,} distinct (query, item) pairs with {labeller}")
    with run.timed("teacher labels"):
        scores = score_pairs(scorer, [q for q, _ in distinct], [t for _, t in distinct], progress=progress).numpy()
    found = dict(zip(distinct, scores, strict=True))
    return with_margins(dataset, [found[pair] for pair in zip(queries, texts, strict=True)], cfg.margin_scale)


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
    query_emb, base_index = dense_ranker(run, model, queries, progress)
    return mine_negatives(queries, query_emb, base_index, positives, **ranks, seed=cfg.schedule.seed)


def dense_ranker(run: RunDir, model, queries: list[str], progress: bool = True) -> tuple[np.ndarray, ItemIndex]:
    """The queries' embeddings and a catalog index, by the off-the-shelf ``model`` (``negatives_from: teacher``)
    or by a static table distilled from it (``static``)."""
    if run.config.teacher.negatives_from == "static":
        # model2vec's table of the untrained teacher (only the tokens the shop uses): a dense ranking of the catalog
        # in seconds, where the teacher's own pass takes minutes to hours
        table = static_students.distill_static(model, None, None, shop_texts(run))
        model = static_students.static_model(table)
        items = encode(model, run.catalog["text"].tolist(), batch_size=1024, role="document")
        query_emb = encode(model, queries, batch_size=1024, role="query")
    else:
        items = item_embeddings(run, model, progress)
        query_emb = encoded_texts(run, model, queries, "query", 128, progress)
    return query_emb, ItemIndex.build(items, run.catalog["item_id"].tolist(), space="base")


def catalog_ranking(run: RunDir, model, queries: list[str], k: int, progress: bool = True) -> list[list[str]]:
    """Each query's top ``k`` item ids by the ranker of ``teacher.negatives_from`` (BM25, the off-the-shelf
    teacher or its static table)."""
    if run.config.teacher.negatives_from == "bm25":
        return run.lexical_index.search_ids(queries, k)
    query_emb, index = dense_ranker(run, model, queries, progress)
    return [list(ids) for ids in index.search(query_emb, k)[0]]


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0

"""From a teacher and texts to a query encoder that searches the teacher's own index, in one call.

:func:`distill_query_encoder` is the recipe's alignment and refinement as a library function, as model2vec's
``distill`` is one call: it builds a student (a static table or a small transformer with a head into the
teacher's space), fits its projection in closed form, aligns it to the teacher's query embeddings of ``texts``
and, given judged pairs and the teacher's item embeddings, refines it contrastively against the frozen items.
With validation judgments each phase keeps its best state and stops when validation stops improving. The
recipe's ``align`` and ``refine`` steps call the same functions (:func:`build_student`, :func:`align_selected`,
:func:`refine_selected`), and ``benchmarks/peers.py`` races our students through this function.

Example::

    from sentence_transformers import SentenceTransformer
    from harnesslm.distill import ItemSpace, distill_query_encoder

    teacher = SentenceTransformer("google/embeddinggemma-300m")
    items = ItemSpace(ids, teacher.encode_document(titles, normalize_embeddings=True))
    student = distill_query_encoder(teacher, queries + titles, items=items, validation=qrels)
    student.encode(["cordless drill"])  # searches the teacher's item embeddings
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from harnesslm.config import (
    SelectionConfig,
    StaticStudentConfig,
    StudentConfig,
    TeacherConfig,
    TruncatedStudentConfig,
    student_config,
)
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.metrics import RelevanceScale
from harnesslm.index.item_index import ItemIndex
from harnesslm.students.dense_sparse import factorize_student
from harnesslm.training.alignment import align_student, fit_projection
from harnesslm.training.negatives import mine_negatives
from harnesslm.training.refinement import refine_student, refinement_dataset
from harnesslm.training.selection import KeepBest, ValidationScorer, evaluation_interval

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

logger = logging.getLogger(__name__)

HEAD_FIT_TEXTS = 20_000
"""Pool texts a transformer student's linear head is fitted on (a static student uses the whole pool)."""

Qrels = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class ItemSpace:
    """The teacher's item side, which the student searches: item ids and their L2-normalised teacher
    embeddings (the rows of the teacher's index)."""

    ids: Sequence[str]
    embeddings: np.ndarray
    space: str = "teacher"

    def index(self) -> ItemIndex:
        return ItemIndex.build(np.ascontiguousarray(self.embeddings, dtype=np.float32), list(self.ids), self.space)


# building --------------------------------------------------------------------------------------------------
def copy_table(table: StaticEmbedding, lowercase: bool = False) -> StaticEmbedding:
    """A fresh StaticEmbedding with its own weights, so training one student leaves the baseline intact; with
    ``lowercase`` its tokenizer reads every text lower-cased (:mod:`harnesslm.students.lowercase`)."""
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    from harnesslm.students.lowercase import lowercased

    tokenizer = lowercased(table.tokenizer) if lowercase else table.tokenizer
    return StaticEmbedding(tokenizer, embedding_weights=table.embedding.weight.detach().clone())


def distill_table(source: SentenceTransformer, cfg: StudentConfig, corpus: Sequence[str]) -> StaticEmbedding:
    """A static student's table from ``source`` (the teacher, or ``cfg.base``): model2vec's distillation, with
    the shop's own words (``cfg.domain_vocabulary``, found in ``corpus``) and, for ``distill_tokens: shop``,
    only the tokens ``corpus`` uses."""
    from harnesslm.students import static as static_students
    from harnesslm.students.vocabulary import domain_vocabulary

    vocabulary = domain_vocabulary(source.tokenizer, corpus, cfg.domain_vocabulary) if cfg.domain_vocabulary else []
    texts = list(dict.fromkeys(corpus)) if cfg.distill_tokens == "shop" else None
    return static_students.distill_static(source, cfg.pca_dims, vocabulary, texts)


def build_student(
    cfg: StudentConfig,
    teacher: SentenceTransformer,
    teacher_dim: int,
    table: StaticEmbedding | None = None,
    base: SentenceTransformer | None = None,
    corpus: Sequence[str] = (),
) -> SentenceTransformer:
    """The untrained student of ``cfg``: a copy of ``table`` (static; with ``cfg.phrases`` of ``corpus``'s
    frequent phrases as tokens of their own) or the first layers of ``base`` (default: the teacher; truncated),
    each with a projection into the teacher's ``teacher_dim``-d space."""
    from harnesslm.students import static as static_students
    from harnesslm.students import truncated as truncated_students

    if cfg.kind == "static":
        if table is None:
            raise ValueError(f"static student {cfg.name!r} needs its distilled table")
        table = copy_table(table, lowercase=cfg.lowercase)
        if cfg.phrases:
            from harnesslm.students.phrases import frequent_phrases, with_phrases

            table = with_phrases(table, frequent_phrases(table.tokenizer, corpus, cfg.phrases))
        return static_students.static_student(table, teacher_dim)
    first = cfg.layer_schedule[0] if cfg.layer_schedule else cfg.layers
    student = truncated_students.truncated_student(
        base if base is not None else teacher, first, teacher_dim, cfg.max_seq_length, linear_head=cfg.linear_head
    )
    factorize_student(student, cfg.dense_sparse.rank_ratio, cfg.dense_sparse.two_four)
    return student


# training under validation ---------------------------------------------------------------------------------
def train_selected(
    student: SentenceTransformer,
    scorer: ValidationScorer | None,
    steps: int,
    selection: SelectionConfig,
    start_label: str,
    train_with: Callable[[list | None], dict],
) -> tuple[dict, dict]:
    """Run ``train_with(callbacks)`` under validation checkpoint selection when there is a validation split.

    ``steps`` is the phase's budget (its schedule's steps, capped by its epochs): the scorings are spread over
    it, and ``selection.patience`` stops the phase early. Returns the trainer's metrics and what was kept (the
    start or a step, with every validation score, and where and why training stopped).
    """
    if scorer is None or steps <= 0:
        return train_with(None), {}
    keeper = KeepBest(
        student,
        scorer,
        evaluation_interval(steps, selection.evaluations),
        start_score=scorer(student),
        patience=selection.patience,
        min_delta=selection.min_delta,
    )
    metrics = train_with([keeper])  # when nothing trained, the callback never fired: the start is kept
    return metrics, keeper.selection.as_dict(start_label)


def align_selected(
    student: SentenceTransformer,
    cfg: StudentConfig,
    texts: Sequence[str],
    targets: np.ndarray,
    scorer: ValidationScorer | None,
    selection: SelectionConfig,
    progress: bool = True,
    say: Callable[[str], None] = logger.info,
    items: np.ndarray | None = None,
) -> dict[str, Any]:
    """Phase 2 on one student, in place: the closed-form projection fit, then gradient alignment to the
    teacher's ``targets`` under validation selection (for a layer schedule, once per layer count). ``items``
    (the teacher's item embeddings) serve score matching (``align.score_weight``). Returns the projection
    fit's error and what was kept."""
    from harnesslm.students import truncated as truncated_students

    fit_mse = fit_projection(
        student,
        texts,
        targets,
        max_texts=None if cfg.kind == "static" else HEAD_FIT_TEXTS,
        seed=cfg.align.seed,
    )
    stages = []
    start_label = "untrained start (projection fit)"
    for layers in [*cfg.layer_schedule, cfg.layers] if cfg.kind == "truncated" else [None]:
        if layers is not None and truncated_students.transformer_layers(student) != layers:
            truncated_students.drop_layers(student, layers)
            start_label = f"start after dropping to {layers} layers"
            say(f"student {cfg.name!r}: dropped to {layers} layers, re-aligning")
        metrics, kept = train_selected(
            student,
            scorer,
            cfg.align.steps_for(len(texts)),
            selection,
            start_label,
            lambda callbacks: align_student(
                student, texts, targets, cfg, progress, callbacks=callbacks, item_embeddings=items
            ),
        )
        stages.append({"layers": layers, **metrics, **kept})
    return {"projection_fit_mse": fit_mse, **stages[-1], **({"stages": stages} if len(stages) > 1 else {})}


def refine_selected(
    student: SentenceTransformer,
    cfg: StudentConfig,
    queries: Sequence[str],
    positives: Sequence[str],
    unique: Sequence[str],
    targets: np.ndarray,
    items: ItemSpace,
    index: ItemIndex,
    scorer: ValidationScorer | None,
    selection: SelectionConfig,
    negative_ranks: tuple[int, int] = (3, 30),
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Phase 3 on one student, in place: contrastive training of its queries against the frozen teacher item
    embeddings, with hard negatives mined from the teacher's index in ``negative_ranks`` (below a margin under
    each query's lowest positive, so unjudged positives are not pushed away), under validation selection.

    ``queries`` and ``positives`` are the judged (query, relevant item id) pairs; ``targets`` holds the
    teacher's embedding of each distinct query of ``unique``, row for row. Returns the trainer's metrics, what
    was kept (see :func:`train_selected`) and the number of training pairs.
    """
    if cfg.kind == "truncated":  # a DSFormer student loaded from disk was written back: factorise it again
        factorize_student(student, cfg.dense_sparse.rank_ratio, cfg.dense_sparse.two_four)
    unique = list(unique)
    query_rows = {q: i for i, q in enumerate(unique)}
    item_rows = {item: i for i, item in enumerate(items.ids)}
    by_query: dict[str, set[str]] = {}
    for query, item in zip(queries, positives, strict=True):
        by_query.setdefault(query, set()).add(item)
    floors = lowest_positive_scores(unique, targets, items.embeddings, item_rows, by_query)
    negatives = mine_negatives(
        unique,
        targets,
        index,
        by_query,
        cfg.refine.hard_negatives,
        *negative_ranks,
        cfg.refine.seed,
        ceilings=(1.0 - cfg.refine.negative_margin) * floors,
    )
    mined = dict(zip(unique, negatives, strict=True))
    dataset = refinement_dataset(
        queries, positives, [mined[q] for q in queries], query_rows, item_rows, cfg.refine.hard_negatives
    )
    metrics, kept = train_selected(
        student,
        scorer,
        cfg.refine.steps_for(len(dataset)),
        selection,
        "aligned (refinement did not help)",
        lambda callbacks: refine_student(
            student, dataset, items.embeddings, targets, cfg, progress, callbacks=callbacks
        ),
    )
    return metrics, kept, len(dataset)


def lowest_positive_scores(
    queries: Sequence[str], query_emb: np.ndarray, items: np.ndarray, item_rows: Mapping, positives: Mapping
) -> np.ndarray:
    """Each query's lowest teacher score over its judged positives (the ceiling mined negatives stay under)."""
    floors = np.empty(len(queries), dtype=np.float32)
    for row, query in enumerate(queries):
        rows = [item_rows[p] for p in positives.get(query, ()) if p in item_rows]
        floors[row] = float((items[rows] @ query_emb[row]).min()) if rows else np.inf
    return floors


def kept_line(selection: dict) -> str:
    """One line on what a phase kept, for the terminal."""
    if "validation_ndcg@10" not in selection:
        return "no validation split: kept the last step"
    stopped = selection.get("stopped") or ""
    where = f"; stopped early at step {selection['stopped_step']}" if stopped.startswith("early") else ""
    return (
        f"validation NDCG@10 {selection['validation_ndcg@10_start']:.4f} at the start, "
        f"{selection['validation_ndcg@10']:.4f} kept ({selection['kept']}){where}"
    )


# the one call ----------------------------------------------------------------------------------------------
def distill_query_encoder(
    teacher: SentenceTransformer | str,
    texts: Sequence[str],
    targets: np.ndarray | None = None,
    *,
    kind: Literal["static", "truncated"] = "static",
    settings: Mapping[str, Any] | StudentConfig | None = None,
    items: ItemSpace | None = None,
    validation: Qrels | None = None,
    train_pairs: Sequence[tuple[str, str]] | None = None,
    corpus: Sequence[str] | None = None,
    selection: SelectionConfig | None = None,
    scale: RelevanceScale | None = None,
    progress: bool = False,
) -> SentenceTransformer:
    """A query encoder distilled from ``teacher`` that searches the teacher's item embeddings.

    Args:
        teacher: the (fine-tuned) teacher, or its path, hub id or ``bundled:NAME``. Its query prompt is used.
        texts: alignment texts: queries, unlabeled queries, catalog titles, pseudo-queries. No labels needed.
        targets: the teacher's query embeddings of ``texts`` (L2-normalised); None encodes them here.
        kind: ``static`` (a token table: ~0.1 ms a query) or ``truncated`` (a small transformer: its first
            layers, of the teacher or of ``settings["base"]``, with a linear head into the teacher's space).
        settings: the student's settings as in a config file's ``students:`` entry (``align``, ``refine``,
            ``base``, ``layers``, ...); defaults are the recipe's for that kind.
        items: the teacher's item ids and embeddings: needed to validate and to refine.
        validation: judgments ``{query: {item id: label}}``: each phase keeps its best state on them and stops
            when they stop improving. Never pass test queries here.
        train_pairs: judged (query, relevant item id) pairs: refinement against the frozen items (needs
            ``items``). Without them the student is only aligned.
        corpus: the shop's texts (queries and catalog) a static table takes its whole words and used tokens
            from; default ``texts``.
        selection, scale: checkpoint selection and the label scale (the recipe's defaults).

    Returns:
        A sentence-transformers model; ``model.encode(queries)`` gives vectors in the teacher's space. Its
        ``distill_report`` attribute says what each phase kept on validation, where it stopped and why.
    """
    from harnesslm.models import model_loading
    from harnesslm.models.bundled import resolve_model
    from harnesslm.models.prompts import set_prompts

    if isinstance(teacher, str):
        teacher = model_loading.load_model(resolve_model(teacher))
        set_prompts(teacher, None, None)
    if isinstance(settings, StaticStudentConfig | TruncatedStudentConfig):
        cfg = settings
    else:
        cfg = student_config({"name": f"{kind}-student", "kind": kind, **(dict(settings or {}))})
    selection = selection or SelectionConfig()
    texts = list(texts)
    if targets is None:
        targets = encode(teacher, texts, batch_size=128, role="query")
    if len(targets) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(targets)} target embeddings")
    index = items.index() if items is not None else None
    scorer = None
    if validation and index is not None:
        queries = list(validation)[: selection.max_queries]
        scorer = ValidationScorer(queries, validation, index, scale or RelevanceScale())
    table = base = None
    if cfg.kind == "static":
        source = teacher if cfg.base is None else model_loading.load_model(resolve_model(cfg.base))
        table = distill_table(source, cfg, corpus if corpus is not None else texts)
    elif cfg.base is not None:
        base = model_loading.load_model(resolve_model(cfg.base))
    corpus = list(corpus) if corpus is not None else texts
    student = build_student(cfg, teacher, int(targets.shape[1]), table=table, base=base, corpus=corpus)
    item_rows = items.embeddings if items is not None else None
    report = {"align": align_selected(student, cfg, texts, targets, scorer, selection, progress, items=item_rows)}
    if train_pairs and index is not None and cfg.refine.steps > 0:
        pair_queries = [q for q, _ in train_pairs]
        unique = list(dict.fromkeys(pair_queries))
        defaults = TeacherConfig()
        metrics, kept, _ = refine_selected(
            student,
            cfg,
            pair_queries,
            [item for _, item in train_pairs],
            unique,
            encode(teacher, unique, batch_size=128, role="query"),
            items,
            index,
            scorer,
            selection,
            (defaults.negatives_from_rank, defaults.negatives_to_rank),
            progress,
        )
        report["refine"] = {**metrics, **kept}
    student.distill_report = report  # what each phase kept, where it stopped and why
    return student

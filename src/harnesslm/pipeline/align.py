"""Phase 2, the align step: build each student and align it to the teacher's query embeddings over the pool."""

from __future__ import annotations

from harnesslm.distill import align_selected, build_student, kept_line
from harnesslm.evaluation.metrics import RelevanceScale, qrels_from_judgments
from harnesslm.index.item_index import ItemIndex
from harnesslm.models import model_loading
from harnesslm.models.bundled import resolve_model
from harnesslm.pipeline.alignment_pool import alignment_pool
from harnesslm.pipeline.static_table import distill_static_baseline, shop_texts
from harnesslm.run.catalog_embeddings import item_embeddings
from harnesslm.run.run_dir import RunDir, console
from harnesslm.run.student_store import save_student
from harnesslm.training.selection import ValidationScorer


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
                base = model_loading.load_model(resolve_model(cfg.base, run.config.cache_dir))
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
            record_selection(run, cfg.name, "aligned", kept)
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


def record_selection(run: RunDir, name: str, phase: str, selection: dict) -> None:
    """What each phase kept and why, in ``selection.json`` (read by the report)."""
    record = run.read_json("selection.json")
    record.setdefault("students", {}).setdefault(name, {})[phase] = selection
    run.update_json("selection.json", record)


def _record_untrained_baseline(run: RunDir, scorer: ValidationScorer | None) -> None:
    """Validation NDCG@10 of the untrained static model on its own index: the floor a student must beat."""
    if scorer is None or not (run.static_baseline_dir / "modules.json").exists():
        return
    static = model_loading.load_model(str(run.static_baseline_dir))
    own = ItemIndex.build(item_embeddings(run, static, progress=False), run.catalog["item_id"].tolist(), "static")
    own_scorer = ValidationScorer(scorer.queries, scorer.qrels, own, scorer.scale)
    run.update_json("selection.json", {"static_untrained_own_index_validation_ndcg@10": own_scorer(static)})

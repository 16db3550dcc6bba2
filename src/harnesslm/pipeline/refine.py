"""Phase 3, the refine step: contrastive training of each aligned student against the frozen teacher items."""

from __future__ import annotations

from harnesslm.distill import ItemSpace, kept_line, refine_selected
from harnesslm.pipeline.align import record_selection, validation_scorer
from harnesslm.run.catalog_embeddings import encoded_texts, item_embeddings
from harnesslm.run.run_dir import RunDir, console
from harnesslm.run.student_store import load_student, save_student
from harnesslm.training.teacher_finetune import positive_pairs


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
            record_selection(run, cfg.name, "refined", selection)
            results[cfg.name] = {**metrics, **selection}
            console.print(f"student {cfg.name!r} refined on {n_pairs:,} pairs; {kept_line(selection)}")
    return results

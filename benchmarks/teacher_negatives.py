"""Benchmark: the teacher's hard negatives mined by BM25, a static table of the untrained teacher, or its index.

Mining negatives from the untrained teacher's index costs a whole catalog pass with that teacher before
fine-tuning starts: about 3 minutes with MiniLM on 2 cores, 25 with all-mpnet-base-v2 and 90 with
EmbeddingGemma-300M on Home Depot. BM25 over the item texts costs seconds. This fine-tunes the teacher once
per miner (``teacher.negatives_from``), all else equal, indexes the whole catalog with it, and reports:

- validation NDCG@10 and Recall@100 (where the default miner is chosen);
- test NDCG@10 with its 95% bootstrap interval, Recall@100, and the paired difference to the first miner
  (the final figure only: nothing is chosen on it);
- the teacher step's wall time (mining included) and whether it made an off-the-shelf catalog pass.

Each miner's run lives in ``--out/<miner>`` (prepare, teacher, index only); the embedding cache is shared, so
a rerun reads what was encoded before. Run it alone: timings are wall time on a quiet machine.

    python benchmarks/teacher_negatives.py [--config configs/homedepot-minilm.yaml] [--miners bm25,teacher] \\
        [--out runs/negatives] [--json benchmarks/results/teacher_negatives.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harnesslm.config import load_config, updated
from harnesslm.evaluation.bootstrap import PairedBootstrap
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.pipeline import steps
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.run import provenance
from harnesslm.run.catalog_embeddings import item_cache_path
from harnesslm.run.run_dir import RunDir
from harnesslm.serving.searcher import Searcher
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
MINERS = ("bm25", "static", "teacher")
console = Console()


def teacher_run(config, root: Path) -> tuple[RunDir, dict]:
    """prepare, teacher and index for ``config`` in ``root`` (steps already current are kept); returns the run
    and what the teacher step did: whether it ran now (its timing is then measured here) and whether the
    off-the-shelf teacher's catalog embeddings were cached before it (a pass it did not pay for)."""
    run = steps.prepare(config.model_copy(update={"students": []}), root)
    cached_before = item_cache_path(run, run.base_teacher).exists()
    present = (run.teacher_dir / "modules.json").exists()
    trained = provenance.must_redo("teacher", run.teacher_dir, present, *provenance.step_inputs(run, "teacher"), False)
    if trained:
        steps.teacher(run)
    if trained or not (run.index_dir / "meta.json").exists():
        steps.build_index(run)
    run = RunDir(root)
    made_pass = item_cache_path(run, run.base_teacher).exists() and not cached_before
    return run, {
        "teacher_step_measured_now": trained,
        "off_the_shelf_pass_cached_before": cached_before,
        "off_the_shelf_pass_made_now": made_pass,
    }


def scores(run: RunDir, split: str) -> tuple[list[str], dict[str, np.ndarray], dict[str, float]]:
    """The split's queries, per-query NDCG@10 and Recall@100 of the fine-tuned teacher, and their means."""
    qrels = qrels_of(run.split(split))
    queries = list(qrels)
    ranked = Searcher(run.teacher, run.index).search(queries, 100)[0]
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
    per_query = {m: np.array([report.per_query[q][m] for q in queries]) for m in ("ndcg@10", "recall@100")}
    return queries, per_query, {m: report.means[m] for m in ("ndcg@10", "recall@100")}


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "homedepot-minilm.yaml")
    parser.add_argument("--miners", default=",".join(MINERS), help="comma-separated: bm25, static, teacher")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "negatives")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "teacher_negatives.json")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="the embedding cache to use (default: the config's); one that holds a pass "
        "already made saves it, and a miner's row then says its off-the-shelf pass was cached before",
    )
    args = parser.parse_args(argv)
    miners = [m.strip() for m in args.miners.split(",") if m.strip()]
    if unknown := [m for m in miners if m not in MINERS]:
        parser.error(f"unknown miner {unknown[0]!r}; choose from {', '.join(MINERS)}")
    base = load_config(args.config)
    if args.cache_dir:
        base = updated(base, {"cache_dir": str(args.cache_dir.resolve())})
    if not base.data.catalog.path.exists():
        print(f"data not found: {base.data.catalog.path} (the benchmark needs ../shared/data/homedepot)")
        return 2
    rows: dict[str, dict] = {}
    per_split: dict[str, dict[str, dict[str, np.ndarray]]] = {"validation": {}, "test": {}}
    for miner in miners:
        run, did = teacher_run(updated(base, {"teacher": {"negatives_from": miner}}), args.out / miner)
        _, per_split["validation"][miner], validation = scores(run, "validation")
        queries, per_split["test"][miner], test = scores(run, "test")
        rows[miner] = {
            "validation": validation,
            "test": test,
            "teacher_step_seconds": run.read_json("timings.json").get("teacher"),
            **did,
        }
    first = miners[0]
    for split, by_miner in per_split.items():  # 95% paired-bootstrap intervals, the same resamples for every miner
        boot = PairedBootstrap.draw(len(by_miner[first]["ndcg@10"]))
        for miner in miners:
            ndcg = by_miner[miner]["ndcg@10"]
            diff = boot.mean(ndcg - by_miner[first]["ndcg@10"])
            rows[miner][split]["ndcg@10_ci"] = boot.mean(ndcg).bounds
            rows[miner][split][f"ndcg@10_minus_{first}"] = {"mean": diff.mean, "ci": diff.bounds}
    results = {
        "config": str(args.config),
        "teacher": base.teacher.model,
        "teacher_steps": base.teacher.schedule.steps,
        "test_queries": len(queries),
        "miners": rows,
        "best_on_validation": max(rows, key=lambda m: rows[m]["validation"]["ndcg@10"]),
    }
    record.save(args.json, results)
    table = Table(title=f"teacher hard negatives, {base.teacher.model} fine-tuned {base.teacher.schedule.steps} steps")
    columns = ("miner", "val NDCG@10", f"val vs {first}", "val R@100", "test NDCG@10 [95% CI]", f"test vs {first}")
    columns += ("test R@100", "teacher s")
    for column in columns:
        table.add_column(column, justify="left" if column == "miner" else "right")
    for miner, row in rows.items():
        t, d = row["test"], row["test"][f"ndcg@10_minus_{first}"]
        v = row["validation"][f"ndcg@10_minus_{first}"]
        seconds = row["teacher_step_seconds"]
        table.add_row(
            miner,
            f"{row['validation']['ndcg@10']:.4f}",
            f"{v['mean']:+.4f} [{v['ci'][0]:+.4f}, {v['ci'][1]:+.4f}]",
            f"{row['validation']['recall@100']:.4f}",
            f"{t['ndcg@10']:.4f} [{t['ndcg@10_ci'][0]:.4f}, {t['ndcg@10_ci'][1]:.4f}]",
            f"{d['mean']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]",
            f"{t['recall@100']:.4f}",
            f"{seconds:.0f}" if seconds is not None else "",
        )
    console.print(table)
    console.print(f"best on validation: {results['best_on_validation']}; results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

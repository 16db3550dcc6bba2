"""Benchmark: the recipe's wall time, phase by phase, from an empty cache or a warm one, with the quality it kept.

Runs ``harness run`` on a config into a fresh run directory and records each phase's wall time
(``timings.json``), where every training phase stopped and why (``selection.json``), and the validation NDCG@10
and Recall@100 of the teacher and of every student's final state, scored once each. ``--small-queries N`` keeps
only N training queries (validation and test untouched): the small-shop case. ``--final`` adds the test figures
the run's evaluation wrote, into a file of its own, without running anything (score test once, at the end).

    python benchmarks/recipe_time.py --config configs/homedepot-minilm.yaml --cache empty --label after
    python benchmarks/recipe_time.py --config configs/homedepot-minilm.yaml --small-queries 120 --cache empty

An empty cache is a fresh cache folder of the run's own (models exported, catalogs encoded, tables distilled
anew); ``warm`` reuses the one an ``empty`` invocation of the same config left. Run it alone on the machine.
Writes ``benchmarks/results/recipe_time_<label>_<config>[_small<N>]_<cache>.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from harnesslm.config import load_config, updated
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings, qrels_from_judgments
from harnesslm.pipeline.evaluate import TEACHER
from harnesslm.pipeline.recipe import run_recipe
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.searcher import Searcher
from results_json import ResultsFile, refuse_second_final

ROOT = Path(__file__).resolve().parents[1]


def validation_figures(run: RunDir) -> dict[str, dict[str, float]]:
    """NDCG@10 and Recall@100 on every validation query, the teacher's and each student's final state."""
    frame = run.split("validation")
    qrels = qrels_from_judgments(frame["query"], frame["item_id"], frame["label"])
    queries = list(qrels)
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    encoders = {"teacher": run.teacher}
    for student in run.students():
        phase = latest_phase(run, student.name)
        encoders[f"{student.name} ({phase})"] = load_student(run, student.name, phase)
    out = {}
    for name, model in encoders.items():
        ranked, _ = run.index.search(Searcher(model, run.index).encode(queries), 100)
        means = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale).means
        out[name] = {"ndcg@10": means["ndcg@10"], "recall@100": means["recall@100"]}
    teacher = out["teacher"]
    for values in out.values():
        values["ndcg_recovery_%"] = 100 * values["ndcg@10"] / teacher["ndcg@10"]
        values["recall_recovery_%"] = 100 * values["recall@100"] / teacher["recall@100"]
    return out


def test_figures(run: RunDir) -> dict:
    """The test figures the run's evaluation wrote (metrics.json), teacher and students."""
    systems = run.read_json("metrics.json")["systems"]
    keys = ("ndcg@10", "recall@100", "ndcg_recovery_%", "ndcg_recovery_ci_%", "recall_recovery_%")
    return {
        name: {k: values[k] for k in keys if k in values}
        for name, values in systems.items()
        if name == TEACHER or values["role"] in ("student", "baseline")
    }


def results_path(label: str, name: str, cache: str, suffix: str = "") -> Path:
    return ROOT / "benchmarks" / "results" / f"recipe_time_{label}_{name}_{cache}{suffix}.json"


def final(record: ResultsFile, args: argparse.Namespace, name: str) -> int:
    """The test figures of a finished run of this benchmark, in a file of their own, once per result."""
    run = RunDir(args.out_root / f"{args.label}-{name}-{args.cache}")
    path = results_path(args.label, name, args.cache, "_test")
    record.extra["rescored"] = refuse_second_final(path, args.rescore)
    figures = {"config": args.config.name, "label": args.label, "cache": args.cache, "test": test_figures(run)}
    record.save(path, figures, {"test": len(set(run.split("test")["query"]))})
    for system, values in figures["test"].items():
        if "ndcg_recovery_%" in values:
            print(f"  test {system}: NDCG@10 {values['ndcg@10']:.4f} ({values['ndcg_recovery_%']:.1f}%)")
    print(f"saved {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "homedepot-minilm.yaml")
    parser.add_argument("--cache", choices=["empty", "warm"], default="empty")
    parser.add_argument("--small-queries", type=int, default=None, help="keep only this many training queries")
    parser.add_argument("--label", default="after", help="names the code state measured: before, after, ...")
    parser.add_argument("--out-root", type=Path, default=ROOT / "runs" / "recipe-time")
    parser.add_argument(
        "--final",
        action="store_true",
        help="run nothing: record the test figures of the run these options name (scored once per result)",
    )
    parser.add_argument("--rescore", action="store_true", help="with --final: score test again on this commit")
    args = parser.parse_args(argv)

    name = args.config.stem + (f"_small{args.small_queries}" if args.small_queries else "")
    if args.final:
        return final(record, args, name)
    config = load_config(args.config)
    if not config.data.catalog.path.exists():
        print(f"data not found: {config.data.catalog.path} (the benchmark needs ../shared/data/homedepot)")
        return 2
    cache = args.out_root / f"{args.label}-{name}-cache"
    run_root = args.out_root / f"{args.label}-{name}-{args.cache}"
    if args.cache == "empty":
        shutil.rmtree(cache, ignore_errors=True)
    elif not cache.exists():
        print(f"no warm cache in {cache}: run with --cache empty first")
        return 2
    shutil.rmtree(run_root, ignore_errors=True)
    patch: dict = {"cache_dir": str(cache.resolve())}
    if args.small_queries:
        patch["data"] = {"max_train_queries": args.small_queries}
    config = updated(config, patch)

    start = time.perf_counter()
    run = run_recipe(config, run_root, progress=False)
    wall = time.perf_counter() - start
    figures = {
        "config": args.config.name,
        "small_queries": args.small_queries,
        "cache": args.cache,
        "label": args.label,
        "wall_seconds": round(wall, 1),
        "phase_seconds": run.read_json("timings.json"),
        "stopped": run.read_json("selection.json"),
        "validation": validation_figures(run),
    }
    splits = {"validation": len(set(run.split("validation")["query"]))}
    path = record.save(results_path(args.label, name, args.cache), figures, splits)
    print(f"{name} ({args.cache} cache, {args.label}): {wall / 60:.1f} min; {figures['phase_seconds']}")
    for system, values in figures["validation"].items():
        print(f"  validation {system}: NDCG@10 {values['ndcg@10']:.4f} ({values['ndcg_recovery_%']:.1f}%)")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

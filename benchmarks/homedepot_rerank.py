"""Benchmark: the re-ranking stage on the real Home Depot data, on top of a finished recipe run.

On the run's validation queries (``--final``: its held-out test queries, once), it measures NDCG@10 after re-ranking the
retriever's top-K with: no re-ranker, the cross-encoder relevance teacher, and the small distilled re-ranker
trained with each loss (margin-MSE, approxNDCG, ListNet, ListMLE, LambdaLoss, RankNet) on the same teacher-
labelled data and the same budget (steps x lists x items); then the margin-MSE student's NDCG@10 as the
amount of teacher-labelled augmented data grows, with a training budget that grows with it (a fixed number of
passes over the point's labelled pairs); and re-ranking latency per query at K for teacher and students.
Every trained model is kept in the run directory, so a rerun only evaluates.

    python benchmarks/homedepot_recipe.py            # first: the recipe run (teacher, index, students)
    python benchmarks/homedepot_rerank.py [--run runs/homedepot] [--stage all|teacher|label|losses|curve|eval]
    python benchmarks/homedepot_rerank.py --bi-encoder margin_mse,approx_ndcg   # distil into the retriever
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harnesslm.config import RelevanceConfig
from harnesslm.pipeline import relevance as stage
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile, refuse_second_final

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ["margin_mse", "approx_ndcg", "listnet", "listmle", "lambdaloss", "ranknet"]
STAGES = ["teacher", "label", "losses", "curve", "eval"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "homedepot", help="finished recipe run")
    parser.add_argument("--retriever", default="static", help="student that retrieves (or 'teacher')")
    parser.add_argument("--k", type=int, default=50, help="candidates re-ranked per query")
    parser.add_argument("--teacher-steps", type=int, default=300, help="teacher steps of 32 pairs")
    parser.add_argument("--max-length", type=int, default=32, help="tokens of query + title")
    parser.add_argument("--distil-queries", type=int, default=2000, help="training queries students learn from")
    parser.add_argument("--augment-k", type=int, default=10, help="unjudged candidates labelled per query")
    parser.add_argument(
        "--augment-queries",
        type=int,
        default=None,
        help="queries whose unjudged candidates are labelled: the students' training queries first, then the "
        "other training queries (default: all training queries)",
    )
    parser.add_argument("--student-steps", type=int, default=400)
    parser.add_argument("--student-layers", type=int, default=3, help="first layers of the teacher kept")
    parser.add_argument("--student-lr", type=float, default=2e-4)
    parser.add_argument("--student-batch", type=int, default=8, help="lists per step")
    parser.add_argument("--list-size", type=int, default=8)
    parser.add_argument("--eval-queries", type=int, default=None, help="test queries re-ranked (default: all)")
    parser.add_argument(
        "--curve", default="0,1000,3000,all", help="augmented query counts for the curve ('all': every one labelled)"
    )
    parser.add_argument(
        "--curve-epochs",
        type=float,
        default=1.75,
        help="training budget of a curve point: passes over its labelled pairs (steps = epochs x pairs / "
        "(lists per step x list size))",
    )
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument(
        "--bi-encoder",
        default="",
        help="only distil the teacher into the retriever (bi-encoder student) with these losses and add its "
        "retrieval NDCG@10 before/after to the existing results file",
    )
    parser.add_argument("--stage", choices=["all", *STAGES], default="all", help="run only up to this stage")
    parser.add_argument(
        "--final",
        action="store_true",
        help="evaluate on the test queries, once (default: the validation queries, where choices are made)",
    )
    parser.add_argument("--rescore", action="store_true", help="with --final: score test again on this commit")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "homedepot_rerank.json")
    return parser.parse_args(argv)


def configure(run: RunDir, args: argparse.Namespace) -> None:
    relevance = RelevanceConfig(
        enabled=True,
        retriever=None if args.retriever == "teacher" else args.retriever,
        candidates_k=args.k,
        teacher={"schedule": {"steps": args.teacher_steps}},
        max_length=args.max_length,
        distil_queries=args.distil_queries,
        augment_k=args.augment_k,
        augment_queries=args.augment_queries,
        reranker={
            "layers": args.student_layers,
            "losses": args.losses.split(","),
            "schedule": {
                "steps": args.student_steps,
                "learning_rate": args.student_lr,
                "batch_size": args.student_batch,
            },
        },
        list_size=args.list_size,
        eval_queries=args.eval_queries,
    )
    run.config = run.config.model_copy(update={"relevance": relevance})
    run.save_config()


def curve_points(args: argparse.Namespace, labelled) -> list[dict]:
    """Each curve point's augmented queries, pairs and step budget (grows with the labelled pairs)."""
    total = int(labelled.loc[~labelled["judged"], "query"].nunique())
    points = []
    for text in args.curve.split(","):
        queries = total if text == "all" else min(int(text), total)
        subset = stage.with_augmentation(labelled, queries)
        steps = math.ceil(args.curve_epochs * len(subset) / (args.student_batch * args.list_size))
        points.append({"augmented_queries": queries, "labelled": subset, "steps": steps})
    return points


def curve_folder(run: RunDir, point: dict) -> Path:
    name = f"augmented-{point['augmented_queries']}-steps-{point['steps']}"
    return run.relevance_dir / "rerankers-curve" / name


def curve_system(point: dict) -> str:
    return f"student (margin_mse, {point['augmented_queries']} augmented queries, {point['steps']} steps)"


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    run = RunDir(args.run)
    configure(run, args)
    if args.bi_encoder:
        return bi_encoder(run, args, record)
    last = len(STAGES) if args.stage == "all" else STAGES.index(args.stage) + 1
    todo = STAGES[:last]
    if not (run.relevance_teacher_dir / "config.json").exists():
        stage.relevance_teacher(run)
    if "label" not in todo:
        return 0
    labelled = stage.label(run)
    # the loss comparison: the students' own training queries, judged pairs + their augmented candidates
    comparison = stage.with_augmentation(labelled, args.distil_queries)
    losses = args.losses.split(",")
    if "losses" in todo:
        for loss in losses:
            if not (run.reranker_dir(loss) / "config.json").exists():
                stage.distill_reranker(run, loss, comparison)
    points = curve_points(args, labelled)
    if "curve" in todo:
        for point in points:
            folder = curve_folder(run, point)
            if not (folder / "config.json").exists():
                stage.distill_reranker(run, "margin_mse", point["labelled"], folder, steps=point["steps"])
    if "eval" not in todo:
        return 0
    rerankers = {stage.TEACHER_RERANKER: stage.load_relevance_teacher(run)}
    rerankers |= {f"student ({loss})": stage.load_reranker(run, loss) for loss in losses}
    rerankers |= {curve_system(p): stage.load_reranker(run, str(curve_folder(run, p))) for p in points}
    split = "test" if args.final else "validation"
    out = args.out if args.final else args.out.with_name(f"{args.out.stem}_validation.json")
    rescored = refuse_second_final(out, args.rescore) if args.final else 0
    result = stage.rerank_evaluation(run, rerankers, split=split)
    summary = summarise(run, result, comparison, points)
    print_tables(summary)
    record.extra["rescored"] = rescored
    record.save(out, summary, {split: result["queries"]})
    Console().print(f"wrote {out}")
    return 0


def bi_encoder(run: RunDir, args: argparse.Namespace, record: ResultsFile) -> int:
    """Distil the cross-encoder teacher into the retriever itself (frozen teacher item embeddings) per loss."""
    labelled = stage.label(run)
    results = {}
    for loss in args.bi_encoder.split(","):
        found = stage.distill_bi_encoder(run, loss, labelled=labelled)
        results[loss] = {key: found[key] for key in ("student", "from_phase", "before", "after", "train_runtime")}
    table = Table(title="Retrieval NDCG@10 of the bi-encoder student, before and after distillation")
    for column in ("loss", "student", "before", "after"):
        table.add_column(column)
    for loss, found in results.items():
        table.add_row(loss, found["student"], f"{found['before']['ndcg@10']:.4f}", f"{found['after']['ndcg@10']:.4f}")
    Console().print(table)
    summary = {"bi_encoder": {"config": run.config.relevance.model_dump(), "losses": results}}
    # a file of its own: results of two runs are never merged into one
    record.save(args.out.with_name(f"{args.out.stem}_bi_encoder.json"), summary)
    return 0


def summarise(run: RunDir, result: dict, comparison, points: list[dict]) -> dict:
    info = run.read_json("relevance.json")
    systems = result["systems"]
    curve = []
    for point in points:
        subset = point["labelled"]
        trained = info.get(f"distillation/{curve_folder(run, point).name}", {})
        curve.append(
            {
                "augmented_queries": point["augmented_queries"],
                "augmented_pairs": int((~subset["judged"]).sum()),
                "judged_pairs": int(subset["judged"].sum()),
                "steps": point["steps"],
                "train_runtime_s": trained.get("train_runtime"),
                "ndcg@10": systems[curve_system(point)]["ndcg@10"],
            }
        )
    training = {key.split("/", 1)[1]: value for key, value in info.items() if key.startswith("distillation/")}
    return {
        "data": str(run.config.data.judgments.path),
        "retriever": result["retriever"],
        "k": result["k"],
        "split": result["split"],
        "queries": result["queries"],
        "relevance_config": run.config.relevance.model_dump(),
        "loss_comparison_pairs": {
            "judged": int(comparison["judged"].sum()),
            "augmented": int((~comparison["judged"]).sum()),
        },
        "teacher_training": info.get("teacher_training"),
        "distillation": training,
        "systems": systems,
        "augmentation_curve": curve,
        "threads": result["threads"],
        "timings_s": {
            k: v
            for k, v in run.read_json("timings.json").items()
            if "re-rank" in k or "relev" in k or "distil" in k or "label" in k or "candidates" in k
        },
    }


def print_tables(summary: dict) -> None:
    console = Console()
    title = (
        f"Re-ranking the {summary['retriever']} top-{summary['k']} ({summary['queries']} {summary['split']} queries)"
    )
    table = Table(title=title)
    for column in ("system", "NDCG@10", "MRR@10", "P@10", "% of teacher", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, values in summary["systems"].items():
        table.add_row(
            name,
            f"{values['ndcg@10']:.4f}",
            f"{values['mrr@10']:.4f}",
            f"{values['p@10']:.4f}",
            f"{values.get('ndcg_recovery_%', float('nan')):.1f}",
            f"{values.get('latency_p50_ms', float('nan')):.1f}",
            f"{values.get('latency_p99_ms', float('nan')):.1f}",
        )
    console.print(table)
    curve = Table(title="margin-MSE student vs teacher-labelled augmented data")
    for column in ("augmented queries", "augmented pairs", "judged pairs", "steps", "training s", "NDCG@10"):
        curve.add_column(column, justify="right")
    for point in summary["augmentation_curve"]:
        curve.add_row(
            str(point["augmented_queries"]),
            f"{point['augmented_pairs']:,}",
            f"{point['judged_pairs']:,}",
            str(point["steps"]),
            f"{point['train_runtime_s'] or float('nan'):.0f}",
            f"{point['ndcg@10']:.4f}",
        )
    console.print(curve)


if __name__ == "__main__":
    sys.exit(main())

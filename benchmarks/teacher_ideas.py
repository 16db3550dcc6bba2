"""Benchmark: the relevance-training ideas of the recipe's neighbours as teacher options, against the plain teacher.

Each idea is an option of the teacher step (``teacher.loss: triplet``, ``teacher.adversarial.method: fgm``,
``teacher.graph_regularizer.weight``, ``teacher.ood_regularizer.weight``, ``teacher.cross_encoder_labels``: the
Walmart recipe, a relevance cross-encoder's margins, from ``--labeller``).
The teacher is fine-tuned once per idea, all else equal, on a split that holds out whole product groups
(``data.ood_holdout``): the queries whose relevant items all fall in them form ``ood_validation`` and
``ood_test``, and training never sees those items. Each teacher indexes the whole catalog and is scored by
NDCG@10 and Recall@100 on ``validation`` and ``ood_validation``, with a paired-bootstrap interval for the
difference to the plain teacher, and the teacher step's wall time. ``--final`` scores ``test`` and
``ood_test`` once, into a file of its own, on the runs already made (nothing is chosen on them).

Each idea's run lives in ``--out/<idea>`` (prepare, teacher, index only); the embedding cache is shared, so a
rerun reads what was encoded before and a teacher already trained with the same settings is kept. Run it alone.

    python benchmarks/teacher_ideas.py [--config configs/homedepot-minilm.yaml] [--ideas plain,triplet,fgm] \\
        [--ood-holdout 0.1] [--out runs/teacher-ideas] [--json benchmarks/results/teacher_ideas.json] [--final]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from harnesslm.config import load_config, updated
from harnesslm.evaluation.bootstrap import PairedBootstrap
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile, refuse_second_final
from teacher_negatives import scores, teacher_run

ROOT = Path(__file__).resolve().parents[1]
LABELLER = "--labeller"
"""Stands for the cross-encoder given as ``--labeller`` in an idea's patch."""
IDEAS: dict[str, dict] = {
    "plain": {},
    "triplet": {"teacher": {"loss": "triplet"}},
    "fgm": {"teacher": {"adversarial": {"method": "fgm"}}},
    "graph": {"teacher": {"graph_regularizer": {"weight": 0.1}}},
    "ood": {"teacher": {"ood_regularizer": {"weight": 1.0}}},
    "fgm-small": {"teacher": {"adversarial": {"method": "fgm", "epsilon": 0.1}}},
    "one-epoch": {"teacher": {"schedule": {"steps": 100_000, "epochs": 1}}},  # a plainer lever: more steps
    "lr-2e-4": {"teacher": {"schedule": {"learning_rate": 2e-4}}},  # a plainer lever: a larger step size
    # the Walmart recipe: a relevance cross-encoder's margins on the rows (the cross-encoder: --labeller)
    "ce-labels": {"teacher": {"cross_encoder_labels": {"weight": 0.25, "model": LABELLER}}},
    "ce-labels-1": {"teacher": {"cross_encoder_labels": {"weight": 1.0, "model": LABELLER}}},  # the weight's choice
    # the same with the labeller the teacher step trains itself (negatives from the off-the-shelf teacher's ranking)
    "ce-labels-own": {"teacher": {"cross_encoder_labels": {"weight": 0.25}}},
    # the best combination: the two ideas that gained on validation alone
    "graph+one-epoch": {"teacher": {"graph_regularizer": {"weight": 0.1}, "schedule": {"steps": 100_000, "epochs": 1}}},
}
"""Each idea as the config patch that turns it on (the plain teacher first: the rows' reference)."""
console = Console()


def updated_patch(patch: dict, labeller: str) -> dict:
    """``patch`` with the cross-encoder labeller's path in place of :data:`LABELLER`."""
    labels = patch["teacher"]["cross_encoder_labels"] | {"model": labeller}
    return patch | {"teacher": patch["teacher"] | {"cross_encoder_labels": labels}}


def score_splits(runs: dict[str, RunDir], splits: tuple[str, ...]) -> dict[str, dict]:
    """Each idea's NDCG@10 and Recall@100 per split, and its paired difference to the first idea's."""
    rows: dict[str, dict] = {idea: {} for idea in runs}
    for split in splits:
        per_query = {}
        for idea, run in runs.items():
            _, per_query[idea], means = scores(run, split)
            rows[idea][split] = dict(means)
        first = next(iter(runs))
        boot = PairedBootstrap.draw(len(per_query[first]["ndcg@10"]))
        for idea in runs:
            for metric in ("ndcg@10", "recall@100"):
                diff = boot.mean(per_query[idea][metric] - per_query[first][metric])
                rows[idea][split][f"{metric}_minus_{first}"] = {"mean": diff.mean, "ci": diff.bounds}
    return rows


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "homedepot-minilm.yaml")
    parser.add_argument("--ideas", default=",".join(IDEAS), help=f"comma-separated: {', '.join(IDEAS)}")
    parser.add_argument("--ood-holdout", type=float, default=0.1, help="share of product groups held out whole")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "teacher-ideas")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "teacher_ideas.json")
    parser.add_argument("--cache-dir", type=Path, help="the embedding cache to use (default: the config's)")
    parser.add_argument(
        "--labeller",
        type=Path,
        default=ROOT / "runs" / "relevance-600" / "terms" / "relevance" / "teacher",
        help="the cross-encoder of the idea ce-labels (made by: python benchmarks/relevance_ideas.py --from-run "
        "runs/teacher-ideas/plain --ideas terms --steps 600 --out runs/relevance-600)",
    )
    parser.add_argument("--final", action="store_true", help="score test and ood_test once on the runs made")
    parser.add_argument("--rescore", action="store_true", help="with --final: score test again on this commit")
    args = parser.parse_args(argv)
    ideas = [i.strip() for i in args.ideas.split(",") if i.strip()]
    if unknown := [i for i in ideas if i not in IDEAS]:
        parser.error(f"unknown idea {unknown[0]!r}; choose from {', '.join(IDEAS)}")
    base = updated(load_config(args.config), {"data": {"ood_holdout": args.ood_holdout}})
    if args.cache_dir:
        base = updated(base, {"cache_dir": str(args.cache_dir.resolve())})
    if not base.data.catalog.path.exists():
        print(f"data not found: {base.data.catalog.path} (the benchmark needs ../shared/data/homedepot)")
        return 2
    if args.final:
        path = args.json.with_name(args.json.stem + "_test.json")
        record.extra["rescored"] = refuse_second_final(path, args.rescore)
        runs = {idea: RunDir(args.out / idea) for idea in ideas}
        rows = score_splits(runs, ("test", "ood_test"))
        sizes = {s: int(runs[ideas[0]].split(s)["query"].nunique()) for s in ("test", "ood_test")}
        record.save(path, {"ideas": rows, "ood_holdout": args.ood_holdout}, sizes)
        console.print(rows)
        return 0
    runs, did = {}, {}
    for idea in ideas:
        patch = IDEAS[idea]
        if patch.get("teacher", {}).get("cross_encoder_labels", {}).get("model") == LABELLER:
            if not (args.labeller / "config.json").exists():
                parser.error(f"no cross-encoder in {args.labeller} (--labeller; see --help for the command)")
            patch = updated_patch(patch, str(args.labeller.resolve()))
        runs[idea], did[idea] = teacher_run(updated(base, patch), args.out / idea)
    rows = score_splits(runs, ("validation", "ood_validation"))
    for idea, run in runs.items():
        rows[idea]["teacher_step_seconds"] = run.read_json("timings.json").get("teacher")
        rows[idea] |= did[idea]
    first = runs[ideas[0]]
    sizes = {s: int(first.split(s)["query"].nunique()) for s in ("validation", "ood_validation")}
    results = {
        "config": str(args.config),
        "teacher": base.teacher.model,
        "ood_holdout": args.ood_holdout,
        "ood_groups_held_out": first.read_json("data.json").get("ood_groups_held_out"),
        "ideas": rows,
        "best_on_validation": max(rows, key=lambda i: rows[i]["validation"]["ndcg@10"]),
    }
    record.save(args.json, results, sizes)
    for idea, row in rows.items():
        v, o = row["validation"], row["ood_validation"]
        console.print(
            f"{idea:8s} validation NDCG@10 {v['ndcg@10']:.4f} ({v[f'ndcg@10_minus_{ideas[0]}']['mean']:+.4f}), "
            f"ood {o['ndcg@10']:.4f} ({o[f'ndcg@10_minus_{ideas[0]}']['mean']:+.4f}), "
            f"teacher {row['teacher_step_seconds'] or 0:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

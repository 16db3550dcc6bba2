"""Benchmark: the Alibaba relevance paper's ideas as options of the cross-encoder relevance teacher.

The relevance teacher (``relevance.teacher``) is fine-tuned once per idea, all else equal, on a copy of a
finished teacher run (by default the plain teacher of ``benchmarks/teacher_ideas.py``, whose split holds out
whole product groups): ``plain``; ``fgm`` (``relevance.teacher.adversarial``: FGM on the pairs' word embeddings
with a clean-to-perturbed view contrast); ``terms`` (``relevance.teacher.professional_terms``: each pair marked
with the catalog's brands and model codes the query names, and whether the item carries them). Each teacher
re-ranks the bi-encoder teacher's top ``--k`` for the ``validation`` and ``ood_validation`` queries; the table
gives NDCG@10 with a paired-bootstrap interval for the difference to ``plain``, the retriever's own order as a
reference, and the training time. ``--final`` scores ``test`` and ``ood_test`` once, into a file of its own.

Each idea's run lives in ``--out/<idea>`` (a copy of ``--from-run``); a teacher already trained with the same
settings is kept, so a rerun only evaluates. Run it alone.

    python benchmarks/relevance_ideas.py [--from-run runs/teacher-ideas/plain] [--ideas plain,fgm,terms] \\
        [--steps 300] [--k 30] [--out runs/relevance-ideas] [--final]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

from harnesslm.config import updated
from harnesslm.evaluation.bootstrap import PairedBootstrap
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.pipeline import relevance as stage
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.rerank.reranker import Reranker
from harnesslm.run.run_dir import RunDir
from harnesslm.serving.searcher import Searcher
from results_json import ResultsFile, refuse_second_final

ROOT = Path(__file__).resolve().parents[1]
IDEAS: dict[str, dict] = {
    "plain": {"professional_terms": False},
    "fgm": {"adversarial": {"method": "fgm", "epsilon": 0.1}, "professional_terms": False},
    "terms": {"professional_terms": True},
}
"""Each idea as the ``relevance.teacher`` patch that turns it on (the plain teacher first: the rows' reference).
Every patch pins what the others turn on, so a changed default does not change an idea."""
RETRIEVER = "retriever order"
console = Console()


def idea_run(
    source: Path, root: Path, patch: dict, steps: int, k: int, candidates: Path | None, train: bool = True
) -> tuple[RunDir, bool]:
    """The relevance teacher of ``patch`` in a copy of ``source`` (kept when current), and whether it was
    trained now. ``candidates``: a folder whose retrieved candidates (the same retriever's) are reused.
    ``train=False`` (the final scoring) refuses to train: test is scored on the teachers validation saw."""
    if not root.exists():
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("relevance", "relevance.json"))
    base = RunDir(root).config
    relevance = {"retriever": None, "candidates_k": k, "teacher": {"schedule": {"steps": steps}, **patch}}
    run = RunDir(root, updated(base, {"relevance": relevance}))
    if stage.relevance_teacher_current(run):
        return run, False
    if not train:
        raise SystemExit(f"the relevance teacher in {root} is not current: run without --final first")
    if candidates is not None and not (run.relevance_dir / "candidates.parquet").exists():
        run.relevance_dir.mkdir(parents=True, exist_ok=True)
        for name in ("candidates.parquet", "candidates.json"):
            shutil.copy2(candidates / name, run.relevance_dir / name)
    stage.relevance_teacher(run)
    return run, True


def score_splits(runs: dict[str, RunDir], splits: tuple[str, ...], k: int) -> dict[str, dict]:
    """Per split: NDCG@10 of each idea's re-ranking of the teacher's top-k (and of the top-k as retrieved),
    with the paired difference to the first idea."""
    first = next(iter(runs.values()))
    scale = RelevanceScale(first.config.data.label_offset, first.config.data.relevant_at)
    rows: dict[str, dict] = {name: {} for name in [RETRIEVER, *runs]}
    for split in splits:
        qrels = qrels_of(first.split(split))
        queries = list(qrels)
        ids, _ = Searcher(first.teacher, first.index).search(queries, k)
        found = dict(zip(queries, ids, strict=True))
        per_query = {RETRIEVER: found}
        for name, run in runs.items():
            per_query[name] = Reranker(stage.load_relevance_teacher(run), run.item_texts).rerank_many(found, True)
        ndcg = {}
        for name, ranked in per_query.items():
            report = evaluate_rankings(ranked, qrels, scale)
            ndcg[name] = np.array([report.per_query[q]["ndcg@10"] for q in queries])
            rows[name][split] = {"ndcg@10": report.means["ndcg@10"]}
        plain = next(iter(runs))
        boot = PairedBootstrap.draw(len(queries))
        for name in rows:
            diff = boot.mean(ndcg[name] - ndcg[plain])
            rows[name][split][f"ndcg@10_minus_{plain}"] = {"mean": diff.mean, "ci": diff.bounds}
    return rows


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-run", type=Path, default=ROOT / "runs" / "teacher-ideas" / "plain")
    parser.add_argument("--ideas", default=",".join(IDEAS), help=f"comma-separated: {', '.join(IDEAS)}")
    parser.add_argument("--steps", type=int, default=300, help="relevance teacher steps (all ideas alike)")
    parser.add_argument("--k", type=int, default=30, help="teacher candidates re-ranked per query")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "relevance-ideas")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "relevance_ideas.json")
    parser.add_argument("--final", action="store_true", help="score test and ood_test once on the teachers made")
    parser.add_argument("--rescore", action="store_true", help="with --final: score test again on this commit")
    args = parser.parse_args(argv)
    ideas = [i.strip() for i in args.ideas.split(",") if i.strip()]
    if unknown := [i for i in ideas if i not in IDEAS]:
        parser.error(f"unknown idea {unknown[0]!r}; choose from {', '.join(IDEAS)}")
    if not (args.from_run / "teacher" / "modules.json").exists():
        print(f"no finished teacher run at {args.from_run}: run benchmarks/teacher_ideas.py --ideas plain first")
        return 2
    made = {}
    for idea in ideas:
        shared = made[ideas[0]][0].relevance_dir if made else None
        made[idea] = idea_run(
            args.from_run, args.out / idea, IDEAS[idea], args.steps, args.k, shared, train=not args.final
        )
    runs = {i: run for i, (run, _) in made.items()}
    splits = ("test", "ood_test") if args.final else ("validation", "ood_validation")
    path = args.json.with_name(args.json.stem + "_test.json") if args.final else args.json
    if args.final:
        record.extra["rescored"] = refuse_second_final(path, args.rescore)
    rows = score_splits(runs, splits, args.k)
    for idea, (run, now) in made.items():  # the trainer's own clock: the training loop alone
        rows[idea]["teacher_seconds"] = run.read_json("relevance.json")["teacher_training"].get("train_runtime")
        rows[idea]["teacher_measured_now"] = now
    sizes = {s: int(runs[ideas[0]].split(s)["query"].nunique()) for s in splits}
    results = {"from_run": str(args.from_run), "steps": args.steps, "k": args.k, "ideas": rows}
    if not args.final:
        results["best_on_validation"] = max(ideas, key=lambda i: rows[i]["validation"]["ndcg@10"])
    record.save(path, results, sizes)
    for name, row in rows.items():
        cells = [f"{s} {row[s]['ndcg@10']:.4f} ({row[s][f'ndcg@10_minus_{ideas[0]}']['mean']:+.4f})" for s in splits]
        console.print(f"{name:16s} " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

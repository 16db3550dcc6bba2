"""Benchmark: what fusing BM25 into a dense ranking does to Recall@100, weight by weight, on **validation**.

Weighted reciprocal-rank fusion gives an item ``w / (60 + dense rank) + (1 - w) / (60 + BM25 rank)``. An item
BM25 ranks first and the dense list lacks beats the dense list's 100th item when ``(1 - w) / 61 > w / 160``,
that is below ``w = 160 / 221 = 0.724``: from that weight up the fused top-100 is the dense top-100 reordered,
and Recall@100 cannot move; below it BM25's best items enter the top 100. For the teacher and each student of a
finished run, every weight of the validation grid gets NDCG@10, Recall@100 (fused and dense), and the mean
number of fused top-100 items the dense top-100 lacks.

    python benchmarks/hybrid_recall.py runs/homedepot --name minilm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harnesslm.evaluation.fusion_weight import WEIGHTS
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings, qrels_from_judgments
from harnesslm.index.fusion import FUSION_DEPTH, RRF_K, fuse_all
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.searcher import Searcher
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]


def recall_keeping_weight(depth: int = FUSION_DEPTH, k: int = RRF_K) -> float:
    """The smallest dense weight at which no item outside the dense top-``depth`` can enter the fused top-``depth``:
    a lexical-only item at rank 1 scores ``(1 - w) / (k + 1)``, the dense list's last one ``w / (k + depth)``."""
    return (k + depth) / (2 * k + depth + 1)


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True, help="names the results file: hybrid_recall_<name>.json")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    frame = run.split("validation")
    qrels = qrels_from_judgments(frame["query"], frame["item_id"], frame["label"])
    queries = list(qrels)
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    lexical = run.lexical_index.search_ids(queries, FUSION_DEPTH)
    encoders = {"teacher": run.teacher}
    for student in run.students():
        phase = latest_phase(run, student.name)
        encoders[f"{student.name} ({phase})"] = load_student(run, student.name, phase)
    threshold = recall_keeping_weight()
    figures: dict[str, dict] = {}
    console = Console()
    for name, encoder in encoders.items():
        dense = Searcher(encoder, run.index).search(queries, FUSION_DEPTH)[0]
        base = evaluate_rankings(dict(zip(queries, dense, strict=True)), qrels, scale).means
        rows = {}
        table = Table(
            title=f"{name} + BM25, {len(queries)} validation queries (dense Recall@100 {base['recall@100']:.4f})"
        )
        for column in ("dense weight", "NDCG@10", "Recall@100", "change", "items from BM25 alone in the top 100"):
            table.add_column(column, justify="right")
        for weight in WEIGHTS:
            fused = fuse_all(dense, lexical, weight, FUSION_DEPTH)
            means = evaluate_rankings(dict(zip(queries, fused, strict=True)), qrels, scale).means
            entered = float(np.mean([len(set(f) - set(d)) for f, d in zip(fused, dense, strict=True)]))
            rows[str(weight)] = {
                "ndcg@10": means["ndcg@10"],
                "recall@100": means["recall@100"],
                "recall@100_change": means["recall@100"] - base["recall@100"],
                "mean_items_outside_dense_top100": entered,
            }
            table.add_row(
                f"{weight:.1f}",
                f"{means['ndcg@10']:.4f}",
                f"{means['recall@100']:.4f}",
                f"{means['recall@100'] - base['recall@100']:+.4f}",
                f"{entered:.1f}",
            )
        console.print(table)
        figures[name] = {"dense": base, "weights": rows}
    console.print(f"the fused top-100 is the dense top-100 reordered from dense weight {threshold:.3f} up")
    path = record.save(
        ROOT / "benchmarks" / "results" / f"hybrid_recall_{args.name}.json",
        {
            "run": str(args.run_dir),
            "rrf_k": RRF_K,
            "depth": FUSION_DEPTH,
            "recall_keeping_weight": threshold,
            "systems": figures,
        },
        {"validation": len(queries)},
    )
    console.print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

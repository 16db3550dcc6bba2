"""Benchmark: early-stopping settings replayed on the validation curves of finished runs.

Every training phase of a run records its validation NDCG@10 at each scoring (``selection.json``). Stopping
early does not change the states before the stop (the schedule is the same), so each (patience, min_delta)
setting can be replayed on those curves exactly: where the phase would have stopped, the score of the state it
would have kept, and the share of the phase's steps it saves. The chosen default is the one that saves the most
steps while no kept student ends more than ``--tolerance`` below what the whole budget kept, on every run given.

    python benchmarks/early_stopping.py runs/recipe-time/before-homedepot-minilm-empty \
        runs/recipe-time/before-homedepot-minilm_small120-empty
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
PATIENCES = (1, 2, 3, 4)
MIN_DELTAS = (0.0, 0.0005, 0.001, 0.002)


def replay(history: list[list[float]], patience: int, min_delta: float) -> tuple[int, float]:
    """(the step training stops at, the best score seen by then) for a recorded curve [[step, score], ...]."""
    best, stale = history[0][1], 0
    for step, score in history[1:]:
        stale = 0 if score > best + min_delta else stale + 1
        best = max(best, score)
        if stale >= patience:
            return int(step), best
    return int(history[-1][0]), best


def curves(run: Path) -> dict[str, list[list[float]]]:
    """Every phase's validation curve in a run: ``student (phase)`` -> [[step, score], ...]."""
    selection = json.loads((run / "selection.json").read_text(encoding="utf-8"))
    out = {}
    for student, phases in selection.get("students", {}).items():
        for phase, record in phases.items():
            for i, stage in enumerate(record.get("stages", [record])):
                if len(stage.get("history", [])) > 1:
                    label = f"{student} ({phase}{f', stage {i + 1}' if 'stages' in record else ''})"
                    out[f"{run.name}: {label}"] = stage["history"]
    return out


def validation_queries(run: Path) -> int:
    return int(json.loads((run / "data.json").read_text(encoding="utf-8"))["queries"]["validation"])


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="finished run directories (trained without stopping)")
    parser.add_argument("--tolerance", type=float, default=0.001, help="largest NDCG@10 a kept state may lose")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "early_stopping.json")
    args = parser.parse_args(argv)
    phases = {name: history for run in args.runs for name, history in curves(run).items()}
    settings = {}
    for patience in PATIENCES:
        for min_delta in MIN_DELTAS:
            rows = {}
            for name, history in phases.items():
                stop, kept = replay(history, patience, min_delta)
                full = max(score for _, score in history)
                last = history[-1][0]
                rows[name] = {
                    "stopped_step": stop,
                    "steps": last,
                    "kept": kept,
                    "whole_budget_kept": full,
                    "loss": full - kept,
                    "steps_saved_%": 100 * (last - stop) / last,
                }
            settings[f"patience {patience}, min_delta {min_delta:g}"] = {
                "patience": patience,
                "min_delta": min_delta,
                "worst_loss": max(r["loss"] for r in rows.values()),
                "mean_steps_saved_%": sum(r["steps_saved_%"] for r in rows.values()) / len(rows),
                "phases": rows,
            }
    eligible = {k: v for k, v in settings.items() if v["worst_loss"] <= args.tolerance}
    chosen = max(eligible, key=lambda k: (eligible[k]["mean_steps_saved_%"], -eligible[k]["worst_loss"]))
    table = Table(title=f"early stopping replayed on {len(phases)} validation curves (tolerance {args.tolerance})")
    for column in ("setting", "worst NDCG@10 lost", "steps saved %", ""):
        table.add_column(column)
    for key, value in settings.items():
        table.add_row(
            key, f"{value['worst_loss']:.4f}", f"{value['mean_steps_saved_%']:.0f}", "chosen" if key == chosen else ""
        )
    Console().print(table)
    path = record.save(
        args.out,
        {"runs": [str(r) for r in args.runs], "tolerance": args.tolerance, "chosen": chosen, "settings": settings},
        {f"validation ({run.name})": validation_queries(run) for run in args.runs},
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

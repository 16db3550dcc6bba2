"""Benchmark: how much of the teacher's quality each student keeps on Home Depot, with confidence intervals.

Stages (each resumable: a finished run directory is reused, so stages can run one at a time):

* ``pool``: the research table. The static student is aligned on a pool that grows by source (training
  queries; + catalog texts; + pseudo-queries; + synthetic queries at several amounts) and scored on the
  **validation** queries, so the defaults chosen from it never look at test queries.
* ``tune`` / ``tune-truncated`` / ``tune-static``: the static student's alignment budget and refinement
  settings; the 2-layer truncated student's start (a fitted linear head or none), learning rate and loss; the
  static table's vocabulary (subwords, or the shop's own words added) and width. On validation.
* ``main``: the recipe with its default students (static; truncated at 2 and 4 layers of the fine-tuned
  teacher) on the full training split; every student after each phase on the **test** queries: NDCG@10 and
  Recall@100 with paired-bootstrap 95% intervals, recovery against the fine-tuned teacher (with intervals),
  top-10 overlap with the teacher, cosine to the teacher's query embedding, batch-1 p50 latency and speed-up.
* ``small``: the default recipe (default teacher settings) with only ``--small-queries`` (120) training queries,
  drawn by query, and the full catalog: the small-data case, where no student may end below its untrained start.

    python benchmarks/homedepot_distillation.py --stage pool,main,small

Writes one file per stage, ``benchmarks/results/homedepot_distillation_<stage>.json``, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harnesslm.config import (
    RunConfig,
    StaticStudentConfig,
    StudentConfig,
    TeacherConfig,
    TruncatedStudentConfig,
    load_config,
    student_config,
    updated,
    updated_student,
)
from harnesslm.evaluation.systems import SystemId
from harnesslm.pipeline import steps
from harnesslm.pipeline.evaluate import TEACHER
from harnesslm.pipeline.recipe import run_recipe
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "homedepot_distillation.json"
console = Console()


# students and pool variants ----------------------------------------------------------------------------------
def students(config: RunConfig, layers: list[int]) -> list[dict]:
    """The default static student plus one truncated student per layer count (the teacher's first k layers)."""
    out = [StaticStudentConfig(name="static")]
    out += [TruncatedStudentConfig(name=f"truncated-{k}l", layers=k) for k in layers]
    return [s.model_dump() for s in out]


def pool_variants(synthetic: list[int]) -> dict[str, dict]:
    """Pool settings from the smallest (training queries) to the largest (every source)."""
    none = {"extra_queries": 0, "catalog_texts": 0, "pseudo_queries": 0, "synthetic_items": 0}
    variants = {
        "training queries": none,
        "+ catalog texts": {**none, "catalog_texts": None},
        "+ pseudo-queries": {**none, "catalog_texts": None, "pseudo_queries": None},
    }
    for n in synthetic:
        variants[f"+ synthetic ({n:,} items)"] = {**none, "catalog_texts": None, "pseudo_queries": None}
        variants[f"+ synthetic ({n:,} items)"] |= {"synthetic_items": n, "synthetic_per_item": 1}
    return variants


def linked_run(main: RunDir, root: Path, config: RunConfig) -> RunDir:
    """A run directory sharing the main run's data, teacher and index (symlinks) with its own config."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("data", "teacher", "index"):
        link = root / name
        if not link.exists():
            os.symlink((main.root / name).resolve(), link)
    run = RunDir(root, config)
    run.save_config()
    return run


# The grids searched by the `tune` stage (on validation): the winners are the static student's defaults.
ALIGN_GRID = {
    "300 steps": {"align": {"steps": 300}},
    "1500 steps": {"align": {"steps": 1500}},
}
REFINE_GRID = {
    "lr 1e-4, anchor 1": {"refine": {"steps": 300, "learning_rate": 1e-4, "align_weight": 1.0}},
    "lr 5e-4, anchor 1": {"refine": {"steps": 300, "learning_rate": 5e-4, "align_weight": 1.0}},
    "lr 5e-4, anchor 0.3": {"refine": {"steps": 300, "learning_rate": 5e-4, "align_weight": 0.3}},
}

# The `tune-truncated` stage: the 2-layer student's start (with or without a fitted linear head), learning rate
# and loss, 300 alignment steps each, on validation. The winner's settings are the truncated default.
TRUNCATED_GRID = {
    "no head, lr 5e-4": {"linear_head": False, "align": {"learning_rate": 5e-4}},
    "head, lr 5e-4": {"linear_head": True, "align": {"learning_rate": 5e-4}},
    "head, lr 1e-3": {"linear_head": True, "align": {"learning_rate": 1e-3}},
    "head, lr 2e-3": {"linear_head": True, "align": {"learning_rate": 2e-3}},
    "head, lr 1e-3, cosine": {"linear_head": True, "align": {"learning_rate": 1e-3, "loss": "cosine"}},
}
TRUNCATED_TUNE_STEPS = 300

# The `tune-static` stage: the static table itself (its vocabulary and width), each aligned for the default
# 1,500 steps on validation. "subwords, 256-d" is the previous default.
STATIC_GRID = {
    "subwords, 256-d": {"domain_vocabulary": 0, "pca_dims": 256},
    "+ domain words, 256-d": {"domain_vocabulary": 20_000, "pca_dims": 256},
    "+ domain words, 384-d": {"domain_vocabulary": 20_000, "pca_dims": None},
    # only the tokens the shop's texts use are distilled, the others' rows predicted from their input embeddings:
    # the fix for a teacher with a huge vocabulary (EmbeddingGemma's 262,144 tokens), checked here against the
    # full table it replaces.
    "+ domain words, 384-d, shop tokens only": {
        "domain_vocabulary": 20_000,
        "pca_dims": None,
        "distill_tokens": "shop",
    },
}
STATIC_TUNE_STEPS = 1500

# The `tune-static-align` stage: the static student's alignment learning rate and budget, with the table the
# config gives (for EmbeddingGemma: shop tokens, no domain words), on validation. 2e-3 for 1,500 steps was the
# default, tuned on MiniLM; on Gemma validation dipped from 0.334 (closed-form start) to 0.292 at the warm-up's
# peak before it climbed to 0.341. 6,000 steps won with both teachers and is now the default.
STATIC_ALIGN_GRID = {
    "lr 2e-3, 1500 steps (the previous default)": {"align": {"steps": 1500}, "lowercase": False},
    "lr 1e-3, 1500 steps": {"align": {"steps": 1500, "learning_rate": 1e-3}, "lowercase": False},
    "lr 5e-4, 1500 steps": {"align": {"steps": 1500, "learning_rate": 5e-4}, "lowercase": False},
    "lr 2e-3, 3000 steps": {"align": {"steps": 3000}, "lowercase": False},
    "lr 2e-3, 6000 steps": {"align": {"steps": 6000}, "lowercase": False},
    # the pool without its pseudo-queries (57,056 of its 73,658 texts): real queries weigh more
    "lr 2e-3, 1500 steps, no pseudo-queries": {
        "align": {"steps": 1500},
        "lowercase": False,
        "pool": {"pseudo_queries": 0},
    },
    # every text read lower-cased: Gemma's tokenizer is cased, the catalog texts in the pool are Title Case
    "lr 2e-3, 6000 steps, lower-cased": {"align": {"steps": 6000}, "lowercase": True},
    # the table taken from a BERT-family model (`base`): its WordPiece tokenizer takes the shop's whole words,
    # which a BPE or SentencePiece teacher's cannot; the projection and alignment carry it into the teacher's space
    "mpnet's table + shop words, 6000 steps": {
        "align": {"steps": 6000},
        "base": "bundled:all-mpnet-base-v2",
        "domain_vocabulary": 20_000,
        "distill_tokens": "all",
        "lowercase": False,
    },
    "MiniLM's table + shop words (384-d), 6000 steps": {
        "align": {"steps": 6000},
        "base": "bundled:all-MiniLM-L6-v2",
        "domain_vocabulary": 20_000,
        "distill_tokens": "all",
        "lowercase": False,
    },
}

# The `tune-static-refine` stage: refinement settings for the config's own static student, each starting from
# the `tune-static-align` winner (on validation). 300 steps at 1e-4 is the default, tuned on MiniLM.
STATIC_REFINE_GRID = {
    "lr 1e-4, 300 steps (default)": {},
    "lr 1e-4, 900 steps": {"refine": {"steps": 900}},
    "lr 3e-4, 300 steps": {"refine": {"learning_rate": 3e-4}},
    "lr 1e-4, 300 steps, 4 negatives": {"refine": {"hard_negatives": 4}},
}


# stages ----------------------------------------------------------------------------------------------------
def stage_pool(config: RunConfig, out: Path, synthetic: list[int], align_steps: int) -> dict:
    """Every variant aligns the default static student for the same ``align_steps`` (the best state kept)."""
    main = prepared_teacher(config, out / "main")
    teacher_val = steps.validation_scorer(main)(main.teacher)
    static = static_student(config)
    rows = {}
    for label, settings in pool_variants(synthetic).items():
        root = out / "pool" / f"{align_steps}-steps" / _slug(label)
        variant = updated(config, {"pool": settings})
        run = _variant(main, variant, root, static, {"align": {"steps": align_steps}})
        rows[label] = _phase_row(run, "aligned", lambda r: steps.align(r, progress=False), teacher_val)
        pool = run.read_json("pool.json")
        rows[label] |= {"pool_size": pool["size"], "sources": pool["sources"]}
    return {"teacher_validation_ndcg@10": teacher_val, "align_steps": align_steps, "variants": rows}


def stage_tune(config: RunConfig, out: Path, align_grid: dict[str, dict], refine_grid: dict[str, dict]) -> dict:
    """The static student's alignment budget, then its refinement settings, each chosen on validation."""
    main = prepared_teacher(config, out / "main")
    teacher_val = steps.validation_scorer(main)(main.teacher)
    static = static_student(config)
    result: dict = {"teacher_validation_ndcg@10": teacher_val, "align": {}, "refine": {}}
    for label, overrides in align_grid.items():
        run = _variant(main, config, out / "tune" / f"align-{_slug(label)}", static, overrides)
        result["align"][label] = _phase_row(run, "aligned", lambda r: steps.align(r, progress=False), teacher_val)
    best = max(result["align"], key=lambda k: result["align"][k]["validation_ndcg@10"])
    result["align_winner"] = best
    aligned = out / "tune" / f"align-{_slug(best)}" / "students" / "static" / "aligned"
    for label, overrides in refine_grid.items():
        run = _variant(main, config, out / "tune" / f"refine-{_slug(label)}", static, {**align_grid[best], **overrides})
        target = run.student_dir("static", "aligned")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(aligned.resolve(), target)
        result["refine"][label] = _phase_row(run, "refined", lambda r: steps.refine(r, progress=False), teacher_val)
    return result


def stage_tune_static_refine(config: RunConfig, out: Path, align_result: dict, grid: dict[str, dict]) -> dict:
    """Refinement settings of the config's static student, each from the alignment winner (validation)."""
    main = prepared_teacher(config, out / "main")
    teacher_val = steps.validation_scorer(main)(main.teacher)
    static = static_student(config)
    variants = align_result["variants"]
    best = max(variants, key=lambda k: variants[k]["validation_ndcg@10"])
    aligned_run = out / "tune-static-align" / _slug(best)
    winner = dict(STATIC_ALIGN_GRID[best])
    if pool := winner.pop("pool", None):
        config = updated(config, {"pool": pool})
    rows = {}
    for label, overrides in grid.items():
        root = out / "tune-static-refine" / _slug(best) / _slug(label)
        run = _variant(main, config, root, static, winner, overrides)  # the winner's student settings, then these
        target = run.student_dir("static", "aligned")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink((aligned_run / "students" / "static" / "aligned").resolve(), target)
        rows[label] = _phase_row(run, "refined", lambda r: steps.refine(r, progress=False), teacher_val)
    return {"teacher_validation_ndcg@10": teacher_val, "align_winner": best, "align_steps": 0, "variants": rows}


def stage_tune_student(
    config: RunConfig,
    out: Path,
    name: str,
    grid: dict[str, dict],
    align_steps: int,
    folder: str,
    only: list[str] | None = None,
) -> dict:
    """One student's alignment settings (the truncated 2-layer start, the static table), each on validation.

    ``only`` keeps the grid's variants with those labels."""
    main = prepared_teacher(config, out / "main")
    teacher_val = steps.validation_scorer(main)(main.teacher)
    student = next(s for s in config.students if s.name == name)
    rows = {}
    for label, overrides in grid.items():
        if only and label not in only:
            continue
        budget = {"align": {"steps": align_steps}} if align_steps else {}
        overrides = dict(overrides)
        pool = overrides.pop("pool", None)  # a run-level setting, not the student's
        variant = updated(config, {"pool": pool}) if pool else config
        run = _variant(main, variant, out / folder / _slug(label), student, budget, overrides)
        rows[label] = _phase_row(
            run, "aligned", lambda r: steps.align(r, progress=False), teacher_val, name=student.name
        )
        if overrides.get("distill_tokens") == "shop":
            rows[label] |= shop_token_coverage(run, run.config.students[0])
    return {"teacher_validation_ndcg@10": teacher_val, "align_steps": align_steps, "variants": rows}


def shop_token_coverage(run: RunDir, student: StudentConfig) -> dict:
    """How much of the table a shop-tokens distillation filled, and how many validation queries hold a token no
    shop text uses (such a token is skipped by that student)."""
    from harnesslm.students.shop_tokens import static_tokenizer, used_token_ids

    source = steps.static_source(run, student)
    tokenizer = static_tokenizer(source.tokenizer, steps.static_vocabulary(run, student, source))
    used = set(used_token_ids(tokenizer, steps.shop_texts(run)))
    queries = list(run.split("validation")["query"].drop_duplicates())
    encoded = tokenizer.encode_batch(queries, add_special_tokens=False)
    missing = sum(1 for enc in encoded if set(enc.ids) - used)
    return {
        "table_tokens": tokenizer.get_vocab_size(),
        "shop_tokens": len(used),
        "validation_queries_with_an_unused_token_%": 100 * missing / len(queries),
    }


def static_student(config: RunConfig) -> StudentConfig | None:
    """The config's static student the stages tune: the one named ``static`` (for EmbeddingGemma, its own
    table; ``static-mpnet-table`` is a grid variant), else the first static one."""
    statics = [s for s in config.students if s.kind == "static"]
    return next((s for s in statics if s.name == "static"), statics[0] if statics else None)


def _variant(main: RunDir, config: RunConfig, root: Path, student: StudentConfig, *patches: dict) -> RunDir:
    """A run of ``student`` alone with ``patches`` (nested settings, applied in order) on the main run's data."""
    for patch in patches:
        student = updated_student(student, patch)
    return linked_run(main, root, config.model_copy(update={"students": [student]}))


def _phase_row(run: RunDir, phase: str, step, teacher_val: float, name: str = "static") -> dict:
    """Run one variant's phase (or reuse it when its selection is already recorded) and score it."""
    done = run.read_json("selection.json").get("students", {}).get(name, {}).get(phase)
    start = time.perf_counter()
    if not done:
        step(run)
    seconds = run.read_json("timings.json").get("align" if phase == "aligned" else "refine", 0.0)
    if not done:
        seconds = time.perf_counter() - start
    kept = run.read_json("selection.json")["students"][name][phase]
    row = {
        "validation_ndcg@10_start": kept["validation_ndcg@10_start"],
        "validation_ndcg@10": kept["validation_ndcg@10"],
        "validation_recovery_%": 100 * kept["validation_ndcg@10"] / teacher_val,
        "kept": kept["kept"],
        "history": kept["history"],
        "seconds": round(seconds, 1),
    }
    console.print(f"{run.root.name}: {row['validation_recovery_%']:.1f}% of the teacher on validation ({row['kept']})")
    return row


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")


def prepared_teacher(config: RunConfig, root: Path) -> RunDir:
    """The run's data, teacher and index (each step skipped when already done)."""
    run = RunDir(root, config)
    if not (run.data_dir / "test.parquet").exists():
        run = steps.prepare(config, root)
    if not (run.teacher_dir / "modules.json").exists():
        steps.teacher(run)
    if not (run.index_dir / "meta.json").exists():
        steps.build_index(run)
    return run


def stage_recipe(config: RunConfig, root: Path) -> dict:
    run = run_recipe(config, root)
    return summarise(run)


def summarise(run: RunDir) -> dict:
    """Per student and phase: quality with intervals, agreement with the teacher, latency, what was kept."""
    metrics, bench = run.read_json("metrics.json"), run.read_json("bench.json")
    selection = run.read_json("selection.json").get("students", {})
    systems = metrics["systems"]
    speed = bench.get("encoders", {})
    keys = (
        "ndcg@10",
        "ndcg@10_ci",
        "recall@100",
        "recall@100_ci",
        "ndcg_recovery_%",
        "ndcg_recovery_ci_%",
        "recall_recovery_%",
        "recall_recovery_ci_%",
        "top10_overlap",
        "cosine_mean",
        "cosine_worst_decile",
    )
    rows = {}
    for name, values in systems.items():
        row = {k: values[k] for k in keys if k in values} | {"role": values["role"]}
        sid = SystemId.parse(name)
        student, phase = sid.name, sid.phase
        # the system's own encoder (an ONNX export has its own row); else the student's PyTorch encoder
        arch = speed.get(name) or next(
            (v for k, v in speed.items() if (o := SystemId.parse(k)).name == student and o.runtime is None), None
        )
        if values["role"] == "student" and arch:
            row |= {"p50_ms": arch["latency"]["p50_ms"], "speed_up_p50": arch["latency_speedup_p50"]}
            row["kept"] = selection.get(student, {}).get(phase, {}).get("kept")
            row["validation_ndcg@10"] = selection.get(student, {}).get(phase, {}).get("validation_ndcg@10")
        rows[name] = row
    return {
        "queries": metrics["queries"],
        "teacher_p50_ms": speed["teacher"]["latency"]["p50_ms"],
        "systems": rows,
        "worst_queries": {k: v[:10] for k, v in metrics.get("worst_queries", {}).items()},
        "pool": run.read_json("pool.json"),
        "untrained_static_validation_ndcg@10": run.read_json("selection.json").get(
            "static_untrained_own_index_validation_ndcg@10"
        ),
        "phase_seconds": run.read_json("timings.json"),
        "data": run.read_json("data.json"),
    }


# printing --------------------------------------------------------------------------------------------------
def _ci(values: dict, key: str, digits: int = 4) -> str:
    ci = values.get(f"{key}_ci") or values.get(key.replace("_%", "_ci_%"))
    value = values.get(key)
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else text


def print_recipe(title: str, summary: dict) -> None:
    table = Table(title=f"{title}: {summary['queries']} test queries")
    for column in ("system", "NDCG@10 [95% CI]", "R@100 [95% CI]", "NDCG kept %", "R@100 kept %", "top-10 overlap"):
        table.add_column(column, justify="right")
    table.add_column("cos mean / worst 10%", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("speed-up", justify="right")
    table.add_column("kept (validation)", justify="left")
    for name, v in summary["systems"].items():
        if "onnx" in name:
            continue
        cos = f"{v['cosine_mean']:.3f} / {v['cosine_worst_decile']:.3f}" if "cosine_mean" in v else ""
        table.add_row(
            name,
            _ci(v, "ndcg@10"),
            _ci(v, "recall@100"),
            _ci(v, "ndcg_recovery_%", 1),
            _ci(v, "recall_recovery_%", 1),
            f"{v['top10_overlap']:.3f}" if "top10_overlap" in v else "",
            cos,
            f"{v['p50_ms']:.3f}" if "p50_ms" in v else (f"{summary['teacher_p50_ms']:.2f}" if name == TEACHER else ""),
            f"{v['speed_up_p50']:.1f}x" if "speed_up_p50" in v else "",
            str(v.get("kept") or ""),
        )
    console.print(table)
    console.print("phase wall times (s):", summary["phase_seconds"])
    console.print("alignment pool:", summary["pool"].get("sources"))


def print_pool(result: dict) -> None:
    teacher = result["teacher_validation_ndcg@10"]
    table = Table(
        title=f"Alignment pool by source (static student, {result['align_steps']} steps, validation queries; "
        f"teacher {teacher:.4f})"
    )
    for column in ("pool", "texts", "val NDCG@10", "kept % of teacher", "kept", "align s"):
        table.add_column(column, justify="right")
    for label, row in result["variants"].items():
        table.add_row(
            label,
            f"{row['pool_size']:,}",
            f"{row['validation_ndcg@10']:.4f}",
            f"{row['validation_recovery_%']:.1f}",
            row["kept"],
            f"{row['seconds']:.0f}",
        )
    console.print(table)


def _validation_table(title: str, rows: dict[str, dict]) -> Table:
    """One row per setting: validation NDCG@10 at the start and of the state kept, recovery, what, seconds."""
    table = Table(title=title)
    for column in ("setting", "val NDCG@10 start", "val NDCG@10 kept", "kept % of teacher", "kept", "s"):
        table.add_column(column, justify="right")
    for label, row in rows.items():
        table.add_row(
            label,
            f"{row['validation_ndcg@10_start']:.4f}",
            f"{row['validation_ndcg@10']:.4f}",
            f"{row['validation_recovery_%']:.1f}",
            row.get("kept", ""),
            f"{row['seconds']:.0f}" if "seconds" in row else "-",
        )
    return table


def print_tune_student(result: dict, student: str) -> None:
    budget = f"{result['align_steps']} alignment steps" if result["align_steps"] else "each setting's alignment budget"
    title = f"{student}, {budget} (validation queries)"
    console.print(_validation_table(title, result["variants"]))


def print_tune(result: dict) -> None:
    for phase in ("align", "refine"):
        console.print(_validation_table(f"Static student, {phase} settings (validation queries)", result[phase]))


# main ------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "homedepot-minilm.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "hd-distillation")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument(
        "--stage",
        default="pool,tune,main,small",
        help="comma-separated: pool, tune, tune-truncated, tune-static, tune-static-align, tune-static-refine, main, "
        "small",
    )
    parser.add_argument("--layers", default="2,4", help="truncated students' layer counts")
    parser.add_argument("--synthetic", default="", help="synthetic-query item counts for the pool table, e.g. 500,2000")
    parser.add_argument("--pool-steps", type=int, default=750, help="alignment steps of every pool variant")
    parser.add_argument(
        "--variant", action="append", help="a tune-static variant's label, to run only those (repeatable)"
    )
    parser.add_argument("--small-queries", type=int, default=120)
    parser.add_argument("--small-layers", default="2", help="truncated students of the small-data run")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if not config.data.catalog.path.exists():
        print(f"data not found: {config.data.catalog.path} (the benchmark needs ../shared/data/homedepot)")
        return 2
    layers = [int(k) for k in args.layers.split(",")]
    own_static = static_student(config)
    config = config.model_copy(update={"students": [student_config(s) for s in students(config, layers)]})
    for stage in args.stage.split(","):
        result: dict = {}  # one file per stage and invocation: figures of two runs are never merged
        if stage == "pool":
            synthetic = [int(n) for n in args.synthetic.split(",") if n]
            result["pool"] = stage_pool(config, args.out, synthetic, args.pool_steps)
            print_pool(result["pool"])
        elif stage == "tune":
            result["tune"] = stage_tune(config, args.out, ALIGN_GRID, REFINE_GRID)
            print_tune(result["tune"])
        elif stage == "tune-truncated":
            result["tune_truncated"] = stage_tune_student(
                config, args.out, "truncated-2l", TRUNCATED_GRID, TRUNCATED_TUNE_STEPS, "tune-truncated"
            )
            print_tune_student(result["tune_truncated"], "2-layer truncated student")
        elif stage == "tune-static":
            tuned = stage_tune_student(
                config, args.out, "static", STATIC_GRID, STATIC_TUNE_STEPS, "tune-static", args.variant
            )
            result["tune_static"] = tuned
            print_tune_student(result["tune_static"], "Static student's table")
        elif stage == "tune-static-align":
            # the config's own static student (its table settings), not the default one the other stages use
            own = config.model_copy(update={"students": [own_static or config.students[0]]})
            tuned = stage_tune_student(own, args.out, "static", STATIC_ALIGN_GRID, 0, "tune-static-align", args.variant)
            result["tune_static_align"] = tuned
            print_tune_student(result["tune_static_align"], "Static student's alignment")
        elif stage == "tune-static-refine":
            own = config.model_copy(update={"students": [own_static or config.students[0]]})
            aligned = json.loads(stage_file(args.json, "tune-static-align").read_text())["tune_static_align"]
            refined = stage_tune_static_refine(own, args.out, aligned, STATIC_REFINE_GRID)
            result["tune_static_refine"] = {refined["align_winner"]: refined}
            title = f"Static student's refinement, from {refined['align_winner']} (validation queries)"
            console.print(_validation_table(title, refined["variants"]))
        elif stage == "main":
            result["main"] = stage_recipe(config, args.out / "main")
            print_recipe("Home Depot, full training split", result["main"])
        elif stage == "small":
            small_layers = {f"truncated-{k}l" for k in args.small_layers.split(",") if k}
            small = config.model_copy(
                update={
                    "data": config.data.model_copy(update={"max_train_queries": args.small_queries}),
                    # the default recipe, as a new user runs it
                    "teacher": TeacherConfig(model=config.teacher.model),
                    "students": [s for s in config.students if s.kind == "static" or s.name in small_layers],
                }
            )
            result["small"] = stage_recipe(small, args.out / "small")
            print_recipe(f"Home Depot, {args.small_queries} training queries", result["small"])
        else:
            parser.error(f"unknown stage {stage!r}")
        result["config"] = str(args.config)
        only = f"-{re.sub(r'[^a-z0-9]+', '-', args.variant.lower())}" if args.variant else ""
        saved = record.save(stage_file(args.json, stage + only), result)
        console.print(f"saved {saved}")
    return 0


def stage_file(path: Path, stage: str) -> Path:
    """Where one stage's figures go: ``homedepot_distillation_<stage>.json`` beside ``--json``."""
    return path.with_name(f"{path.stem}_{stage.replace('-', '_')}.json")


if __name__ == "__main__":
    sys.exit(main())

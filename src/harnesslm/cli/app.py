"""Distil a large retrieval model into a small, fast query encoder that searches the large model's own
index, and measure how much quality it kept and how much speed it won.

Start with `harness demo`. On your own data: `harness run CONFIG.yaml`, or step by step:
prepare -> teacher -> index -> align -> refine -> evaluate -> bench (each reads and writes a run directory).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markdown import Markdown

from harnesslm.config import IndexConfig, RunConfig, load_config
from harnesslm.data.errors import DataError
from harnesslm.index.item_index import IndexMismatchError
from harnesslm.models.bundled import BundledModelError
from harnesslm.pipeline.run_dir import RunDir, StepMissingError

app = typer.Typer(
    name="harness",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

RunArg = Annotated[Path, typer.Argument(help="Run directory (created by `harness prepare` or `harness run`).")]
StudentOpt = Annotated[
    list[str] | None, typer.Option("--student", "-s", help="Only this student (repeatable). Default: all.")
]
USER_ERRORS = (DataError, StepMissingError, BundledModelError, IndexMismatchError, FileNotFoundError)


def _guard(action: Callable[[], Any]) -> Any:
    """Run ``action``; turn the user's mistakes into one red line and exit code 2."""
    try:
        return action()
    except USER_ERRORS as error:
        err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(2) from None
    except ValidationError as error:
        err.print(f"[red]invalid configuration:[/red]\n{error}")
        raise typer.Exit(2) from None


def _show_report(run: RunDir) -> None:
    from harnesslm.pipeline.report import write_report

    console.print(Markdown(write_report(run)))
    console.print(f"\nreport: {run.root / 'report.md'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory to create.")] = Path("runs/demo"),
    force: Annotated[bool, typer.Option(help="Redo every step even if its output exists.")] = False,
) -> None:
    """Generate the built-in synthetic shop and run the whole recipe on it (a few minutes on 2 cores)."""
    from harnesslm.pipeline.recipe import demo_config, run_recipe

    def action() -> None:
        config = demo_config(out / "demo-data")
        _show_report(run_recipe(config, out, force=force))

    _guard(action)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/ for examples).")],
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/run"),
    force: Annotated[bool, typer.Option(help="Redo every step even if its output exists.")] = False,
) -> None:
    """Run the whole recipe: prepare, teacher, index, align, refine, evaluate, bench, report.

    Steps whose outputs exist and are still valid are skipped, so an interrupted run resumes.
    """
    from harnesslm.pipeline.recipe import run_recipe

    _guard(lambda: _show_report(run_recipe(load_config(config), out, force=force)))


@app.command()
def prepare(
    out: Annotated[Path, typer.Option(help="Run directory to create.")],
    config: Annotated[Path | None, typer.Option(help="YAML config; flags below override it.")] = None,
    catalog: Annotated[Path | None, typer.Option(help="Catalog file (CSV, TSV, JSONL, Parquet).")] = None,
    judgments: Annotated[Path | None, typer.Option(help="Judged query log (query, item, label).")] = None,
    id_column: Annotated[str | None, typer.Option(help="Catalog column with the item id.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Catalog column with the item text.")] = None,
    query_column: Annotated[str | None, typer.Option(help="Judgments column with the query.")] = None,
    item_column: Annotated[str | None, typer.Option(help="Judgments column with the item id.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Judgments column with the graded label.")] = None,
    teacher_model: Annotated[
        str | None,
        typer.Option(
            "--teacher",
            help="Teacher model: path, hub id or bundled:all-MiniLM-L6-v2 / bundled:all-mpnet-base-v2.",
        ),
    ] = None,
) -> None:
    """Load, validate and split the data by query; write the run directory and its resolved config."""
    from harnesslm.pipeline import steps

    def action() -> None:
        cfg = _config_from_flags(
            config,
            catalog,
            judgments,
            id_column,
            text_column,
            query_column,
            item_column,
            label_column,
            teacher_model,
        )
        steps.prepare(cfg, out)

    _guard(action)


def _config_from_flags(
    config: Path | None, catalog: Path | None, judgments: Path | None, *columns_and_teacher: str | None
) -> RunConfig:
    id_column, text_column, query_column, item_column, label_column, teacher_model = columns_and_teacher
    raw: dict = load_config(config).model_dump() if config else {"data": {}}
    data = raw["data"]
    if catalog:
        data["catalog"] = {**data.get("catalog", {}), "path": catalog.resolve()}
    if judgments:
        data["judgments"] = {**data.get("judgments", {}), "path": judgments.resolve()}
    for section, key, value in (
        ("catalog", "id_column", id_column),
        ("catalog", "text_column", text_column),
        ("judgments", "query_column", query_column),
        ("judgments", "item_column", item_column),
        ("judgments", "label_column", label_column),
    ):
        if value is not None:
            data.setdefault(section, {})[key] = value
    if teacher_model:
        raw.setdefault("teacher", {})["model"] = teacher_model
    for section in ("catalog", "judgments"):
        if "path" not in data.get(section, {}):
            default = _default_data_file(section)
            if default is None:
                raise typer.BadParameter(f"give --{section} or a --config with data.{section}.path")
            data.setdefault(section, {})["path"] = default
    return RunConfig.model_validate(raw)


def _default_data_file(section: str) -> Path | None:
    """Without flags, read the Home Depot files from ../shared/data/homedepot when they are there."""
    name = {"catalog": "products.csv", "judgments": "dev.csv"}[section]
    candidate = Path("..") / "shared" / "data" / "homedepot" / name
    return candidate.resolve() if candidate.exists() else None


@app.command()
def teacher(run_dir: RunArg) -> None:
    """Phase 1: fine-tune the teacher contrastively (in-batch + mined hard negatives)."""
    from harnesslm.pipeline import steps

    _guard(lambda: steps.teacher(RunDir(run_dir)))


@app.command()
def index(
    run_dir: RunArg,
    kind: Annotated[str | None, typer.Option(help="exact (default) or hnsw.")] = None,
) -> None:
    """Encode the catalog with the teacher (cached) and build its FAISS index."""
    from harnesslm.pipeline import steps

    def action() -> None:
        run = RunDir(run_dir)
        if kind:
            run.config.index = IndexConfig.model_validate({**run.config.index.model_dump(), "kind": kind})
            run.save_config()
        steps.build_index(run)

    _guard(action)


@app.command()
def align(run_dir: RunArg, student: StudentOpt = None) -> None:
    """Phase 2: build each student and align it to the teacher's query embeddings (MSE)."""
    from harnesslm.pipeline import steps

    _guard(lambda: steps.align(RunDir(run_dir), student))


@app.command()
def refine(run_dir: RunArg, student: StudentOpt = None) -> None:
    """Phase 3: contrastive refinement of the students against the frozen teacher item embeddings."""
    from harnesslm.pipeline import steps

    _guard(lambda: steps.refine(RunDir(run_dir), student))


@app.command()
def evaluate(
    run_dir: RunArg,
    judgments: Annotated[Path | None, typer.Option(help="Any judged query file; default: the test split.")] = None,
    query_column: Annotated[str, typer.Option(help="Column with the query.")] = "search_term",
    item_column: Annotated[str, typer.Option(help="Column with the item id.")] = "product_uid",
    label_column: Annotated[str, typer.Option(help="Column with the graded label.")] = "relevance",
) -> None:
    """Score teacher (before/after), students (each phase) and baselines; print the table."""
    from harnesslm.pipeline.evaluate import evaluate as evaluate_run

    def action() -> None:
        run = RunDir(run_dir)
        columns = {"query_column": query_column, "item_column": item_column, "label_column": label_column}
        evaluate_run(run, judgments, columns if judgments else None)
        _show_report(run)

    _guard(action)


@app.command()
def bench(run_dir: RunArg, student: StudentOpt = None) -> None:
    """Query latency (p50/p95/p99, batch 1) and throughput of teacher and students, threads fixed."""
    from harnesslm.pipeline.bench import bench as bench_run

    def action() -> None:
        run = RunDir(run_dir)
        bench_run(run, student)
        _show_report(run)

    _guard(action)


@app.command()
def report(run_dir: RunArg) -> None:
    """Print (and rewrite) the run's Markdown report."""
    _guard(lambda: _show_report(RunDir(run_dir)))


def main() -> None:
    logging.basicConfig(level=os.environ.get("HARNESSLM_LOG", "WARNING"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app(prog_name="harness")


if __name__ == "__main__":
    sys.exit(main())

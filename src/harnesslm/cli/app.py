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

from harnesslm.config import RANKING_LOSSES, ConfigError, RunConfig, load_config, updated
from harnesslm.data.errors import DataError
from harnesslm.models.bundled import BundledModelError
from harnesslm.run.run_dir import RunDir, StepMissingError
from harnesslm.serving.schemas import ServiceSettings

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


def _user_errors() -> tuple[type[Exception], ...]:
    """The mistakes a user can make, reported in one line; FAISS loads only when a command runs."""
    from harnesslm.extras import MissingExtraError
    from harnesslm.index.item_index import IndexMismatchError

    return (
        ConfigError,
        DataError,
        StepMissingError,
        BundledModelError,
        IndexMismatchError,
        MissingExtraError,
        FileNotFoundError,
    )


def _guard(action: Callable[[], Any]) -> Any:
    """Run ``action``; turn the user's mistakes into one red line and exit code 2."""
    try:
        return action()
    except _user_errors() as error:
        err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(2) from None
    except ValidationError as error:
        err.print(f"[red]invalid configuration:[/red]\n{error}")
        raise typer.Exit(2) from None


def _show_report(run: RunDir) -> None:
    """Write report.md and print its headline tables (they fit 80 columns; the full report is the file)."""
    from harnesslm.report.markdown import terminal_summary, write_report

    write_report(run)
    for part in terminal_summary(run):
        console.print(part)
    console.print(f"\nfull report: {run.root / 'report.md'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory to create.")] = Path("runs/demo"),
    force: Annotated[bool, typer.Option(help="Redo every step even if its output exists.")] = False,
    rerank: Annotated[
        bool, typer.Option(help="Add the re-ranking stage: cross-encoder teacher and distilled re-ranker (~2 min).")
    ] = False,
) -> None:
    """Generate the built-in synthetic shop and run the whole recipe on it (within 5 minutes on 2 cores)."""
    from harnesslm.pipeline.recipe import demo_config, run_recipe

    def action() -> None:
        config = demo_config(out / "demo-data", rerank=rerank)
        _show_report(run_recipe(config, out, force=force))

    _guard(action)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/ for examples).")],
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/run"),
    force: Annotated[bool, typer.Option(help="Redo every step even if its output exists.")] = False,
) -> None:
    """Run the whole recipe: prepare, teacher, index, align, refine, evaluate, bench, report.

    A step whose output exists and was made with the current settings and inputs is skipped, so an
    interrupted run resumes; a step whose settings (or an earlier step) changed is redone, and says why.
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
    catalog_format: Annotated[
        str | None, typer.Option(help="Catalog format when its name does not say: csv, tsv, jsonl, parquet.")
    ] = None,
    judgments_format: Annotated[
        str | None, typer.Option(help="Judgments format when its name does not say: csv, tsv, jsonl, parquet.")
    ] = None,
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
        patch = {
            "data": {
                "catalog": _given(
                    path=catalog.resolve() if catalog else None,
                    id_column=id_column,
                    text_column=text_column,
                    format=catalog_format,
                ),
                "judgments": _given(
                    path=judgments.resolve() if judgments else None,
                    query_column=query_column,
                    item_column=item_column,
                    label_column=label_column,
                    format=judgments_format,
                ),
            },
            "teacher": _given(model=teacher_model),
        }
        steps.prepare(prepare_config(config, patch), out)

    _guard(action)


def _given(**options: Any) -> dict[str, Any]:
    """The options a user gave (the others are None): what a command's flags override in the config."""
    return {key: value for key, value in options.items() if value is not None}


def prepare_config(config: Path | None, patch: dict[str, Any]) -> RunConfig:
    """``config`` (or the defaults) with the flags' ``patch``; a data file named nowhere is Home Depot's, read
    from ../shared/data/homedepot when it is there."""
    raw: dict = load_config(config).model_dump() if config else {"data": {}}
    for section in ("catalog", "judgments"):
        if "path" not in patch["data"][section] and "path" not in raw["data"].get(section, {}):
            default = _default_data_file(section)
            if default is None:
                raise typer.BadParameter(f"give --{section} or a --config with data.{section}.path")
            patch["data"][section]["path"] = default
    return updated(raw, patch)


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
    kind: Annotated[
        str | None, typer.Option(help="exact (default), hnsw, ivfpq, sq8 (FAISS, in RUN/index) or milvus.")
    ] = None,
    nlist: Annotated[int | None, typer.Option(help="IVF lists (ivfpq, Milvus IVF_*); default ~4 sqrt(items).")] = None,
    pq_m: Annotated[int | None, typer.Option(help="ivfpq bytes per item; must divide the dim (default dim/4).")] = None,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists scanned per query (default 32).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Encode the catalog in resumable shards on this many processes.")
    ] = None,
    milvus_uri: Annotated[
        str | None, typer.Option(help="Milvus Lite file (*.db) or http://host:19530; default RUN/index/milvus.db.")
    ] = None,
    milvus_collection: Annotated[str | None, typer.Option(help="Milvus collection (alias) name.")] = None,
    milvus_index_type: Annotated[
        str | None, typer.Option(help="Milvus index: HNSW (default), FLAT, IVF_FLAT, IVF_SQ8, AUTOINDEX.")
    ] = None,
    milvus_token: Annotated[
        str | None, typer.Option(envvar="MILVUS_TOKEN", help="Milvus token (not written to config.yaml).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(help="Re-encode the catalog even when its embeddings are cached (the index is always rebuilt)."),
    ] = False,
    update: Annotated[
        Path | None,
        typer.Option(
            help="Catalog change: a file with the catalog's columns (new items, changed texts or fields). Only new "
            "and changed texts are encoded and the index is changed in place (every FAISS kind; Milvus by upsert "
            "and delete, journaled: rerun the same update to complete one cut off); a FAISS index and the catalog "
            "are replaced whole when all is written."
        ),
    ] = None,
    delete: Annotated[
        Path | None,
        typer.Option(help="Items taken off sale: ids one a line (.txt), or a table with the catalog's id column."),
    ] = None,
) -> None:
    """Encode the catalog with the teacher (cached) and build its index (FAISS, or a Milvus collection); with
    --update / --delete, apply a catalog change instead of a full pass.

    The options are saved in the run's config.yaml (except the token), so later steps use the same index.
    """
    from harnesslm.pipeline import steps

    def action() -> None:
        if update or delete:
            from harnesslm.pipeline.index import update_index

            update_index(RunDir(run_dir), update, delete)
            return
        index_given = _given(kind=kind, ivf_nlist=nlist, pq_m=pq_m, ivf_nprobe=nprobe)
        milvus = _given(uri=milvus_uri, collection=milvus_collection, index_type=milvus_index_type)
        given = {
            "index": {**index_given, **({"milvus": milvus} if milvus else {})},
            "encoding": _given(workers=workers),
        }
        chosen = updated(RunDir(run_dir).config, given)
        # the token is used for this build only, never written to config.yaml
        building = updated(chosen, {"index": {"milvus": _given(token=milvus_token)}})
        try:
            steps.build_index(RunDir(run_dir, building), refresh=force)
        except ValueError as error:  # impossible settings for this catalog (pq_m vs dim, too few items, ...)
            err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=True, highlight=False)
            raise typer.Exit(2) from None
        if any(given.values()):  # only settings that built an index are kept for later steps
            RunDir(run_dir, chosen).save_config()

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


COSINES = ("fp32_mean_cosine", "int8_mean_cosine")


@app.command()
def export(
    run_dir: RunArg,
    student: StudentOpt = None,
    router: Annotated[
        bool,
        typer.Option(
            "--router",
            help="Instead: write one sentence-transformers model whose Router sends queries to the student and "
            "documents to the teacher (encode_query / encode_document), with a model card.",
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for --router. Default: RUN/export/STUDENT-router.")] = None,
) -> None:
    """Export each student's latest phase as ONNX (float32 + int8, tokenizer included) for serving, or with
    --router one deployable asymmetric model."""
    from rich.markup import escape

    from harnesslm.pipeline.export import export as export_run
    from harnesslm.pipeline.export import export_router

    def action() -> None:
        if router:
            export_router(RunDir(run_dir), student[0] if student else None, out)
            return
        try:
            exported = export_run(RunDir(run_dir), student)
        except ImportError as error:  # the optional onnx extra is not installed
            err.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None
        for name, values in exported.items():
            agreement = ", ".join(f"{k} {values[k]:.5f}" for k in COSINES if k in values)
            console.print(f"{name} ({values['phase']}): {run_dir / values['folder']}; vs PyTorch: {agreement}")

    _guard(action)


LOSSES = ", ".join(RANKING_LOSSES)


@app.command()
def relevance(
    run_dir: RunArg,
    loss: Annotated[
        list[str] | None, typer.Option("--loss", "-l", help=f"Distil with this loss (repeatable): {LOSSES}.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain the teacher and re-rankers even if they exist.")] = False,
) -> None:
    """Re-ranking stage: train the cross-encoder relevance teacher on the judgments (soft targets), label the
    retriever's unjudged candidates with it, distil a small cross-encoder, and evaluate re-ranking."""
    from harnesslm.pipeline.relevance import relevance as relevance_stage

    def action() -> None:
        run = RunDir(run_dir)
        relevance_stage(run, loss, force=force)
        _show_report(run)

    _guard(action)


@app.command()
def rerank(
    run_dir: RunArg,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Re-rank one query and print it.")] = None,
    reranker: Annotated[
        str, typer.Option(help="`teacher`, or the loss name of a distilled re-ranker (e.g. margin_mse).")
    ] = "teacher",
    k: Annotated[int | None, typer.Option(help="Candidates re-ranked (default: relevance.candidates_k).")] = None,
    top: Annotated[int, typer.Option(help="Results printed for --query.")] = 10,
) -> None:
    """Retrieve the top-K and re-score it with a cross-encoder. With --query, print the ranking; without,
    evaluate every trained re-ranker on the test queries (NDCG@10, latency per query at K)."""
    from rich.table import Table

    from harnesslm.pipeline import relevance as stage

    def action() -> None:
        run = RunDir(run_dir)
        if k is not None:  # for this command only: config.yaml keeps its own candidates_k
            run = RunDir(run_dir, updated(run.config, {"relevance": {"candidates_k": k}}))
        if query is None:
            stage.rerank_evaluation(run)
            _show_report(run)
            return
        table = Table("rank", "item", "score", "text")
        for rank, (item, score, text) in enumerate(stage.rerank(run, query, reranker, k)[:top], start=1):
            table.add_row(str(rank), item, f"{score:.3f}", text)
        console.print(table)

    _guard(action)


@app.command()
def report(
    run_dir: RunArg,
    full: Annotated[bool, typer.Option(help="Print the whole Markdown report, not only its headline tables.")] = False,
    html: Annotated[
        bool,
        typer.Option(
            "--html",
            help="Also write RUN/report.html: quality kept with confidence intervals, batch-1 latency "
            "distributions and load-test latency against concurrency, as plots (needs harness-lm[report]).",
        ),
    ] = False,
    load_test: Annotated[
        Path | None,
        typer.Option(help="Load-test JSON (benchmarks/load_test.py) for the HTML report. Default: RUN/load_test.json."),
    ] = None,
) -> None:
    """Rewrite the run's report.md and print its headline tables (or all of it with --full)."""

    def action() -> None:
        run = RunDir(run_dir)
        if full:
            from harnesslm.report.markdown import write_report

            console.print(Markdown(write_report(run)))
        else:
            _show_report(run)
        if html:
            from harnesslm.report.html import write_html_report

            console.print(f"HTML report: {write_html_report(run, load_test)}")

    _guard(action)


_SERVICE = {name: field.default for name, field in ServiceSettings.model_fields.items()}
"""The service's defaults, written once (``ServiceSettings``); ``serve``'s options show them."""


@app.command()
def serve(
    run_dir: RunArg,
    student: Annotated[
        str | None, typer.Option("--student", "-s", help="Student to serve. Default: the first configured one.")
    ] = None,
    encoder: Annotated[
        str,
        typer.Option(
            help="auto (numpy for a static student, else pytorch), pytorch, numpy, onnx or onnx-int8 (both from "
            "`harness export`), or teacher."
        ),
    ] = "auto",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_k: Annotated[int, typer.Option(help="Largest k a request may ask for.")] = _SERVICE["max_k"],
    batch_window_ms: Annotated[
        float, typer.Option(help="Micro-batching: how long to wait for more requests after the first (ms).")
    ] = _SERVICE["batch_window_ms"],
    max_batch: Annotated[
        int, typer.Option(help="Most queries per encoder call, and per POST /search/batch request.")
    ] = _SERVICE["max_batch"],
    batching: Annotated[
        bool | None,
        typer.Option(
            "--batching/--no-batching",
            help="Micro-batch concurrent requests through the encoder. Default: on, except for a static student "
            "(its encoding costs microseconds: waiting for company only adds latency).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="torch / FAISS / ONNX Runtime intra-op threads per worker. Default: the cores less one (at least "
            "1), so the event loop keeps a core.",
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        str,
        typer.Option(
            help="auto (an HNSW graph with exact fallback for an exact-built catalog of 20k+ items, built once into "
            "RUN/serving), exact (the run's index as built) or hnsw."
        ),
    ] = "auto",
    lexical: Annotated[
        bool,
        typer.Option(help="Load the catalog's BM25 index (built once into RUN/lexical) for mode=lexical|hybrid."),
    ] = True,
    mode: Annotated[
        str, typer.Option(help="Search mode of requests that name none: dense, lexical or hybrid.")
    ] = _SERVICE["default_mode"],
    compare_teacher: Annotated[
        bool, typer.Option(help="Also load the teacher, for its column on the /compare page.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes, each with its own copy of the model. With 2 or more, one acceptor hands each "
            "new connection to the worker holding the fewest, so keep-alive clients are spread evenly.",
        ),
    ] = 1,
    pin_cpus: Annotated[
        bool,
        typer.Option(help="With 2 or more workers: keep each worker on a core of its own (round robin)."),
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    watch_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="How often to check the run's index, catalog and students for a change, and serve the new ones "
            "without a restart (0: never; SIGHUP and POST /admin/reload still swap).",
        ),
    ] = 2.0,
) -> None:
    """Serve search over HTTP: GET/POST /search, POST /search/batch, GET /health, a comparison page at /compare;
    docs at /docs.

    Serves the student's latest phase (refined, else aligned) and refuses to start when it was trained for
    another teacher than the index was built with. Every search answer carries a Server-Timing header (parse,
    queue, encode, search, lexical, fuse, lookup, total).

    A new index (`harness index RUN --update ...`) or student is served without a restart and without dropping
    a request: when the run's files change, on SIGHUP, or on POST /admin/reload with the bearer token in
    $HARNESSLM_ADMIN_TOKEN (the endpoint is off without it). A student trained for another index is refused and
    the old pair keeps serving. With --workers N each worker watches the files itself; SIGHUP and the endpoint
    reach one worker only.
    """
    from harnesslm.pipeline.serve import ServeOptions, serve_http
    from harnesslm.serving.service_error import ServiceError

    def action() -> None:
        try:
            settings = ServiceSettings(
                default_k=min(_SERVICE["default_k"], max_k),
                max_k=max_k,
                batch_window_ms=batch_window_ms,
                max_batch=max_batch,
                max_encode_batch=max_batch,
                batching=batching,
                default_mode=mode,
            )
            given = {"student": student, "encoder": encoder, "threads": threads, "index": index, "lexical": lexical}
            options = ServeOptions(
                run_dir=str(run_dir),
                compare_teacher=compare_teacher,
                settings=settings,
                watch_seconds=watch_seconds,
                **given,
            )
            if code := serve_http(options, host, port, workers, access_log=access_log, pin_cpus=pin_cpus):
                raise typer.Exit(code)
        except (ServiceError, ValueError) as error:
            err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=True, highlight=False)
            raise typer.Exit(2) from None

    _guard(action)


class _TerminalLogFilter(logging.Filter):
    """On the terminal: this package's warnings, and other libraries' records only when they are errors.

    Libraries' warnings (model load reports, conversions) still reach the run's ``logs/run.log``.
    """

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "harnesslm" or record.name.startswith("harnesslm.")
        return record.levelno >= (self.level if own else max(self.level, logging.ERROR))


def _configure_logging() -> None:
    """One terminal handler at ``HARNESSLM_LOG`` (default WARNING), filtered by :class:`_TerminalLogFilter`."""
    level = logging.getLevelName(os.environ.get("HARNESSLM_LOG", "WARNING").upper())
    level = level if isinstance(level, int) else logging.WARNING
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.addFilter(_TerminalLogFilter(level))
    logging.basicConfig(level=min(level, logging.WARNING), handlers=[handler])


def main() -> None:
    _configure_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app(prog_name="harness")


if __name__ == "__main__":
    sys.exit(main())

"""``harness serve``: the search app for a run directory, with the student (or teacher) and encoder asked for.

Here, not in ``serving/``, because it reads the run-directory layout: the service itself knows only a searcher
and a catalog. What the service derives from a run once (its HNSW graph, the graph's recall against exact
search, the hybrid's weight when evaluation did not record it) is kept in ``RUN/serving/``.

The defaults are the fast path, each measured with ``benchmarks/load_test.py``:

- **index**: a run built with an exact index is served from an HNSW graph over the same vectors once the
  catalog has :data:`ANN_MIN_ITEMS` items (a flat scan of 50k items costs several ms a query, the graph a
  fraction of one), with exact search for selective filters and deep k (``ExactFallbackIndex``); its
  recall@10 against exact search for the served encoder's validation queries is measured and shown in
  ``/health``. ``index="exact"`` serves the run's own index.
- **threads**: the encoder, FAISS and ONNX Runtime get one core less than the machine has (at least 1), so
  the event loop that parses requests and writes responses keeps a core, and nothing spins on it.
- **batching**: micro-batching for transformer encoders, whose cost per query falls with the batch; not for
  a static student, whose encoding costs microseconds and gains nothing from waiting for company, and which
  then runs on the event loop (no worker-thread hop).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from harnesslm import extras
from harnesslm.atomic import write_text
from harnesslm.index import copied_from, index_version, mark_copy
from harnesslm.run.run_dir import RunDir, StepMissingError
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.hot_swap import Reloading
from harnesslm.serving.http_app import ServedPair, app_for_pair
from harnesslm.serving.schemas import ModelInfo, ServiceSettings
from harnesslm.serving.searcher import HybridSearcher, QueryEncoder, Searcher
from harnesslm.serving.service_error import ServiceError
from harnesslm.students.meta import STUDENT_META, read_student_meta
from harnesslm.students.numpy_encoder import StaticQueryEncoder

logger = logging.getLogger(__name__)

EncoderKind = Literal["auto", "pytorch", "numpy", "onnx", "onnx-int8", "teacher"]
ENCODER_KINDS: tuple[str, ...] = ("auto", "pytorch", "numpy", "onnx", "onnx-int8", "teacher")
IndexChoice = Literal["auto", "exact", "hnsw"]
INDEX_CHOICES: tuple[str, ...] = ("auto", "exact", "hnsw")
ANN_MIN_ITEMS = 20_000
"""Catalog size from which ``index="auto"`` serves an exact-built run from an HNSW graph."""
RECALL_QUERIES = 500
"""Validation queries the graph's recall against exact search is measured on."""
RECALL_K = 10


def app_from_run(run_dir: str | Path, **options: Any) -> FastAPI:
    """The search app for a run: :class:`ServeOptions` given as keywords (``student``, ``encoder``,
    ``settings``, ``threads``, ``index``, ``lexical``, ``compare_teacher``); see :func:`app_from_options`."""
    return app_from_options(ServeOptions(run_dir=str(run_dir), **options))


def app_from_options(options: ServeOptions) -> FastAPI:
    """The search app for ``options.run_dir`` (see :func:`pair_from_options`), which swaps to the run's new
    index or student without a restart: when the run's index, catalog or students change on disk (polled every
    ``options.watch_seconds``), on ``SIGHUP``, or on ``POST /admin/reload`` with ``options.admin_token``."""
    served, settings = pair_from_options(options)
    run_dir = Path(options.run_dir)
    reloading = Reloading(
        load=lambda: pair_from_options(options)[0],
        watched=lambda: served_files_state(run_dir),
        poll_seconds=options.watch_seconds,
        admin_token=options.admin_token,
    )
    return app_for_pair(served, settings, reloading)


def served_files_state(run_dir: Path) -> tuple:
    """What the service was loaded from, as (path, modification time, size) of each file: the index's
    description, the catalog and every student's record. A change means there is something new to serve."""
    paths = [run_dir / "index" / "meta.json", run_dir / "data" / "catalog.parquet"]
    paths += sorted((run_dir / "students").glob(f"*/*/{STUDENT_META}"))
    state = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            state.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(state)


def pair_from_options(options: ServeOptions) -> tuple[ServedPair, ServiceSettings]:
    """The served pair for ``options.run_dir`` and the settings it was built with: ``student`` (default: the
    first configured one, latest phase) or the teacher.

    ``encoder``: ``pytorch`` (the sentence-transformers folder), ``numpy`` (a static student computed in numpy:
    the same embeddings, an order of magnitude faster at batch 1), ``auto`` (numpy for a static student,
    else pytorch), ``onnx`` / ``onnx-int8`` (the student's ``onnx/`` export, from ``harness export``), or
    ``teacher`` (the fine-tuned teacher itself). ``threads`` pins torch, FAISS and ONNX Runtime intra-op
    threads (default: :func:`serving_threads`). ``index``: ``auto`` (HNSW with exact fallback for a large
    exact-built catalog, see the module docstring), ``exact`` (the run's index as built) or ``hnsw``.
    ``lexical`` loads (building once) the catalog's BM25 index for ``mode=lexical|hybrid``;
    ``compare_teacher`` also loads the teacher for the ``/compare`` page. ``settings.batching`` None (the default) picks
    micro-batching by encoder (on, except for a static student). Raises ServiceError, StepMissingError or
    IndexMismatchError (student trained for another teacher than the index) instead of starting.
    """
    student, encoder, threads, index = options.student, options.encoder, options.threads, options.index
    if encoder not in ENCODER_KINDS:
        raise ServiceError(f"unknown encoder {encoder!r}; use one of {', '.join(ENCODER_KINDS)}")
    if index not in INDEX_CHOICES:
        raise ServiceError(f"unknown index {index!r}; use one of {', '.join(INDEX_CHOICES)}")
    threads = serving_threads() if threads is None else threads
    pin_threads(threads)
    run = RunDir(Path(options.run_dir))
    query_encoder: Any
    if encoder == "teacher":
        if student:
            raise ServiceError("--student and --encoder teacher exclude each other")
        query_encoder = run.teacher
        info = ModelInfo(name="teacher", kind="teacher", encoder=encoder, space=run.teacher_space)
        label = "teacher (fine-tuned)"
    else:
        names = [s.name for s in run.config.students]
        name = student or (names[0] if names else None)
        if name is None or name not in names:
            raise ServiceError(f"no student named {name!r} in {run.root}; configured: {', '.join(names) or 'none'}")
        phase = latest_phase(run, name)
        folder = run.student_dir(name, phase)
        meta = read_student_meta(folder)
        if meta is None or not meta.teacher_space:
            raise ServiceError(f"{folder} records no teacher space (harness_student.json): re-run `harness align`")
        if encoder in ("auto", "pytorch", "numpy"):
            query_encoder = load_student(run, name, phase)
            fast = StaticQueryEncoder.from_model(query_encoder) if encoder != "pytorch" else None
            if encoder == "numpy" and fast is None:
                raise ServiceError(f"--encoder numpy needs a static student; {name!r} is not one")
            query_encoder, encoder = (fast, "numpy") if fast is not None else (query_encoder, "pytorch")
        else:
            query_encoder = _load_onnx(folder / "onnx", quantized=encoder == "onnx-int8", threads=threads)
        info = ModelInfo(
            name=name,
            kind=meta.kind or run.config.student(name).kind,
            phase=phase,
            encoder=encoder,
            # an ONNX export records the space of the student it was exported from; check that one
            space=getattr(query_encoder, "teacher_space", None) or meta.teacher_space,
        )
        label = f"{name} ({phase})"
    settings = options.settings
    if settings.batching is None:  # micro-batching only where it lowers latency
        fast = info.kind == "static"  # microseconds per query: no batching, no worker thread
        settings = settings.model_copy(update={"batching": not fast, "inline_search": fast})
    searcher = Searcher(query_encoder, serving_index(run, index, query_encoder, label))
    hybrid = (
        HybridSearcher(searcher, lexical_index(run), hybrid_weight(run, label, searcher)) if options.lexical else None
    )
    teacher = None
    if options.compare_teacher:  # the teacher's column: the served searcher itself when it is the teacher
        teacher = searcher if encoder == "teacher" else Searcher(run.teacher, searcher.index)
    return ServedPair.build(searcher, run.catalog, info, settings, hybrid=hybrid, teacher=teacher), settings


class ServeOptions(BaseModel):
    """Everything ``harness serve`` decides, in one value: what the CLI fills, what :func:`app_from_run` takes as
    keywords and what each uvicorn worker process rebuilds its app from. The limits and batching the app reads
    are ``settings`` (:class:`ServiceSettings`, where each default is written)."""

    model_config = ConfigDict(extra="forbid")
    ENV: ClassVar[str] = "HARNESSLM_SERVE_OPTIONS"

    run_dir: str
    student: str | None = None
    encoder: str = Field("auto", description=f"one of {', '.join(ENCODER_KINDS)}")
    threads: int | None = Field(None, ge=1)
    index: str = Field("auto", description=f"one of {', '.join(INDEX_CHOICES)}")
    lexical: bool = True
    compare_teacher: bool = False
    settings: ServiceSettings = Field(
        default_factory=lambda: ServiceSettings(batching=None),
        description="request limits and batching (batching None: decided by the encoder)",
    )
    watch_seconds: float = Field(
        2.0, ge=0, description="how often the run's index, catalog and students are checked for a change (0: never)"
    )
    admin_token: str | None = Field(
        default_factory=lambda: os.environ.get("HARNESSLM_ADMIN_TOKEN") or None,
        description="bearer token of POST /admin/reload (default: $HARNESSLM_ADMIN_TOKEN; none: the endpoint is off)",
        repr=False,
    )


def serve_http(
    options: ServeOptions,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
    pin_cpus: bool = False,
) -> int:
    """Serve ``options``' app over HTTP until stopped (``harness serve``); the exit code. With several
    ``workers`` the app is built here once first (a bad option fails once, and what is shared is built once),
    then each worker process rebuilds it from ``options`` through :func:`app_from_env`."""
    import uvicorn

    from harnesslm.serving.workers import serve_workers

    if workers == 1:
        uvicorn.run(app_from_options(options), host=host, port=port, access_log=access_log)
        return 0
    app_from_options(options)
    os.environ[ServeOptions.ENV] = options.model_dump_json()
    return serve_workers(
        "harnesslm.pipeline.serve:app_from_env",
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        pin_cpus=pin_cpus,
    )


def app_from_env() -> FastAPI:
    """The app factory of each uvicorn worker process (``harness serve --workers N``): options from the env."""
    raw = os.environ.get(ServeOptions.ENV)
    if not raw:
        raise ServiceError(f"${ServeOptions.ENV} is not set: start workers through `harness serve --workers N`")
    return app_from_options(ServeOptions.model_validate_json(raw))


def lexical_index(run: RunDir) -> Any:
    """The lexical side of hybrid search: Milvus's own BM25 when the run's index is a Milvus collection built
    with the item texts, else the catalog's bm25s index (built once into ``RUN/lexical``)."""
    index = run.index
    if getattr(index.meta, "full_text", False):
        return index.full_text()
    return run.lexical_index


def serving_threads(cores: int | None = None) -> int:
    """Intra-op threads for the encoder, FAISS and ONNX Runtime: one core less than there are (at least 1).

    The event loop (HTTP parsing, validation, serialisation) runs in its own thread and needs a core of its
    own; intra-op pools as wide as the machine spin on that core between requests and slow everything.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def serving_index(run: RunDir, choice: IndexChoice, encoder: Any, label: str) -> Any:
    """The index the service searches: the run's own, or an HNSW graph over its vectors with exact fallback.

    The graph is built once into ``RUN/serving/hnsw`` (with the run's ``index.hnsw_*`` settings) and rebuilt
    when the run's index changes; its recall@10 against exact search is measured for ``label``'s queries.
    """
    if not (run.index_dir / "meta.json").exists():
        raise StepMissingError(f"no index in {run.index_dir}: run `harness index` first")
    base_meta = json.loads((run.index_dir / "meta.json").read_text(encoding="utf-8"))
    wants_graph = choice == "hnsw" or (
        choice == "auto" and base_meta["kind"] == "exact" and base_meta["size"] >= ANN_MIN_ITEMS
    )
    if not wants_graph or base_meta["kind"] == "hnsw":  # served as built (a run's own HNSW graph included)
        return run.index
    if base_meta["kind"] != "exact":
        raise ServiceError(f"--index hnsw needs a run built with an exact or hnsw index, not {base_meta['kind']}")
    from harnesslm.index.fallback import ExactFallbackIndex
    from harnesslm.index.item_index import ItemIndex, index_recall

    folder = run.serving_dir / "hnsw"
    cfg = run.config.index
    graph = None
    source = index_version(run.index_dir)
    if (folder / "meta.json").exists():
        graph = ItemIndex.load(folder)
        built_from = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        wanted = {"hnsw_m": cfg.hnsw_m, "hnsw_ef_construction": cfg.hnsw_ef_construction}
        if (
            any(built_from[key] != base_meta[key] for key in ("space", "size", "dim"))
            or any(built_from.get(key) != value for key, value in wanted.items())
            or copied_from(folder) != source
        ):  # another index (a catalog change the update step did not apply to the graph), or other settings
            graph = None
        elif built_from.get("hnsw_ef_search") != cfg.hnsw_ef_search:
            graph.tune(ef_search=cfg.hnsw_ef_search)
    if graph is None:
        logger.info("building the serving HNSW graph (m=%d) over %d items", cfg.hnsw_m, base_meta["size"])
        exact = run.index
        graph = ItemIndex.build(
            exact.vectors(),
            list(exact.item_ids),
            exact.meta.space,
            kind="hnsw",
            hnsw_m=cfg.hnsw_m,
            hnsw_ef_construction=cfg.hnsw_ef_construction,
            hnsw_ef_search=cfg.hnsw_ef_search,
            source_dim=exact.meta.source_dim,  # a Matryoshka index's vectors are already cut
        )
        graph.save(folder)
        mark_copy(folder, source)
        (folder / "recall.json").unlink(missing_ok=True)
        run.loaded.index_rewritten()  # the flat copy is not needed any more: the graph keeps the vectors
    served = ExactFallbackIndex(graph)
    recalls_path = folder / "recall.json"
    recalls = json.loads(recalls_path.read_text(encoding="utf-8")) if recalls_path.exists() else {}
    if label not in recalls:
        queries = _validation_queries(run)
        if queries:
            embeddings = Searcher(encoder, graph).encode(queries)
            recalls[label] = round(index_recall(graph, served.exact, embeddings, RECALL_K), 4)
            write_text(recalls_path, json.dumps(recalls, indent=2))
    if label in recalls:
        served.recall = {f"recall@{RECALL_K}": recalls[label]}
    return served


def hybrid_weight(run: RunDir, label: str, searcher: Searcher) -> float:
    """The dense weight of ``label`` + BM25: as ``harness evaluate`` chose it on validation, else chosen now.

    A weight chosen here (the run was not evaluated, or ``label`` was not among its systems) is chosen the
    same way, on the validation queries, and kept in ``RUN/serving/hybrid.json``.
    """
    for entry in run.read_json("metrics.json").get("hybrid", {}).get("weights", {}).values():
        if entry.get("dense") == label:
            return float(entry["weight"])
    path = run.serving_dir / "hybrid.json"
    chosen = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if label in chosen:
        return float(chosen[label]["weight"])
    from harnesslm.pipeline.evaluate import validation_weight

    found = validation_weight(run, searcher, run.lexical_index)
    if found is None:
        logger.warning("no validation queries to choose the hybrid weight on: fusing with equal weights")
        return 0.5
    weight, by_weight, queries = found
    chosen[label] = {"weight": weight, "validation_queries": queries, "validation_ndcg@10": by_weight}
    write_text(path, json.dumps(chosen, indent=2))
    return weight


def _validation_queries(run: RunDir) -> list[str]:
    try:
        frame = run.split("validation")
    except StepMissingError:
        return []
    return list(dict.fromkeys(frame["query"]))[:RECALL_QUERIES]


def _load_onnx(folder: Path, quantized: bool, threads: int | None) -> QueryEncoder:
    """The student's ONNX export (float32, or int8 with ``quantized``); onnxruntime is imported only here."""
    from harnesslm.onnx.format import ONNX_META

    try:
        extras.require("onnx", "ONNX serving", ("onnxruntime",))
    except extras.MissingExtraError as error:
        raise ServiceError(str(error)) from None
    from harnesslm.onnx.runtime import OnnxQueryEncoder

    if not (folder / ONNX_META).exists():
        raise ServiceError(f"no ONNX export in {folder}: run `harness export` on this run first")
    try:
        return OnnxQueryEncoder.load(folder, quantized=quantized, threads=threads, spin=False)
    except FileNotFoundError as error:
        raise ServiceError(f"{error} (`harness export` writes it)") from None


def pin_threads(threads: int) -> None:
    """Fix torch, FAISS and numpy's BLAS intra-op threads (ONNX Runtime gets them when its session is built).

    numpy's BLAS matters for a static student with a projection (``pooled @ W`` in the numpy encoder): by
    default OpenBLAS runs it on every core, and beside a second worker and the client those threads wait on
    each other. Measured on EmbeddingGemma's mpnet-table student, 2 workers, 4 clients: 283 requests/s with
    5.8 ms encoding a request, against 2,011-2,370 requests/s and 0.16-0.19 ms pinned (archived results,
    ``benchmarks/results/archive/load_test_gemma_mpnet_table*.json``).
    """
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise ServiceError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")  # for the process's life, as torch's and FAISS's

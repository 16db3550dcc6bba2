"""The HTTP search service: a query encoder plus the teacher's item index behind FastAPI.

``create_app`` builds the app from any :class:`Searcher` (a student, the teacher or an exported ONNX encoder)
and the catalog; ``app_from_run`` does it for a run directory and is what ``harness serve`` calls.

Endpoints: ``GET /search?q=...&k=10``, ``POST /search`` (with equality ``filters`` on item fields),
``POST /search/batch``, ``GET /health``; the OpenAPI schema is at ``/openapi.json`` (docs at ``/docs``).
Requests that arrive together are encoded in one encoder call by a :class:`MicroBatcher`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from harnesslm.data.text import normalize_query
from harnesslm.serving.searcher import QueryEncoder, Searcher
from harnesslm.serving.static_encoder import StaticQueryEncoder

logger = logging.getLogger(__name__)

EncoderKind = Literal["auto", "pytorch", "numpy", "onnx", "onnx-int8", "teacher"]
ENCODER_KINDS: tuple[str, ...] = ("auto", "pytorch", "numpy", "onnx", "onnx-int8", "teacher")
FilterValues = str | list[str]


class ServiceError(RuntimeError):
    """The service cannot start as asked (unknown student, missing export, ...); the CLI prints it and exits 2."""


# settings --------------------------------------------------------------------------------------------------
class ServiceSettings(BaseModel):
    """Request limits and micro-batching of the search service."""

    model_config = ConfigDict(extra="forbid")

    default_k: int = Field(10, ge=1, description="k when a request does not give one")
    max_k: int = Field(100, ge=1, description="largest k a request may ask for")
    max_query_chars: int = Field(512, ge=1, description="longest query accepted, in characters")
    max_batch: int = Field(64, ge=1, description="most queries in one POST /search/batch request")
    batching: bool = Field(True, description="micro-batch concurrent requests through the encoder")
    batch_window_ms: float = Field(
        2.0, ge=0, description="how long the batcher waits for more requests after the first one arrives"
    )
    max_encode_batch: int = Field(64, ge=1, description="most queries the batcher encodes in one call")
    max_filter_values: int = Field(256, ge=1, description="most filter values in one request, all fields together")


# request / response models ---------------------------------------------------------------------------------
class SearchRequest(BaseModel):
    """One query."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "k": "5" or true is an error, not k=5 or k=1

    query: str = Field(..., description="the search text", examples=["cordless drill 20v"])
    k: int | None = Field(None, description="number of hits (default: the service's default_k; at most max_k)")
    filters: dict[str, FilterValues] | None = Field(
        None,
        description="equality filters on item fields: {field: value} or {field: [values]} (any of them); "
        "all fields must match. Values compare as text.",
        examples=[{"category": "tools", "brand": ["Kestrel", "Torqmax"]}],
    )


class BatchSearchRequest(BaseModel):
    """Several queries with the same k and filters."""

    model_config = ConfigDict(extra="forbid", strict=True)

    queries: list[str] = Field(..., description="the search texts (at most max_batch)", examples=[["hammer", "romex"]])
    k: int | None = Field(None, description="number of hits per query (default: default_k; at most max_k)")
    filters: dict[str, FilterValues] | None = Field(None, description="as in POST /search, applied to every query")


class Hit(BaseModel):
    """One item found for a query."""

    item_id: str = Field(..., description="the catalog's item id")
    score: float = Field(..., description="inner product of the normalised query and item embeddings (cosine)")
    title: str = Field(..., description="the item's text as indexed")
    fields: dict[str, str] = Field(default_factory=dict, description="the item's extra catalog fields")


class SearchResponse(BaseModel):
    """The hits for one query, best first."""

    query: str = Field(..., description="the query as sent")
    k: int = Field(..., description="the number of hits asked for (fewer come back when fewer items match)")
    hits: list[Hit]
    took_ms: float = Field(..., description="server time for the request, queueing included")


class BatchSearchResponse(BaseModel):
    """One result per query, in request order."""

    results: list[SearchResponse]
    took_ms: float


class ModelInfo(BaseModel):
    """Which query encoder is served, and the teacher space it embeds into."""

    name: str = Field(..., description="student name, or 'teacher'")
    kind: str = Field(..., description="static, truncated or teacher")
    phase: str | None = Field(None, description="aligned or refined (students)")
    encoder: str = Field(..., description="pytorch, numpy, onnx, onnx-int8 or teacher")
    space: str = Field(..., description="fingerprint of the teacher space the encoder was trained for")


class IndexInfo(BaseModel):
    kind: str
    size: int
    dim: int
    space: str = Field(..., description="fingerprint of the teacher space the index was built in")


class BatcherStats(BaseModel):
    enabled: bool
    window_ms: float
    max_encode_batch: int
    encoder_calls: int = Field(..., description="encoder calls made so far")
    queries: int = Field(..., description="queries encoded so far")
    mean_batch: float = Field(..., description="queries per encoder call")


class HealthResponse(BaseModel):
    status: str
    model: ModelInfo
    index: IndexInfo
    teacher_space: str
    filter_fields: list[str]
    limits: ServiceSettings
    batcher: BatcherStats


# catalog -----------------------------------------------------------------------------------------------
class ItemTable:
    """Titles and fields of the indexed items, row-aligned with the index (row = position in ``item_ids``)."""

    def __init__(self, item_ids: Sequence[str], items: pd.DataFrame, fields: Sequence[str] | None = None) -> None:
        frame = items.drop_duplicates("item_id").set_index("item_id")
        missing = pd.Index(item_ids).difference(frame.index)
        if len(missing):
            raise ServiceError(
                f"{len(missing)} indexed items are not in the catalog (e.g. {missing[0]!r}): rebuild the index"
            )
        aligned = frame.reindex(pd.Index(item_ids))
        names = [c for c in aligned.columns if c != "text"] if fields is None else list(fields)
        unknown = [f for f in names if f not in aligned.columns]
        if unknown:
            raise ServiceError(f"catalog has no field {unknown[0]!r}; it has: {', '.join(aligned.columns)}")
        self.titles: list[str] = aligned["text"].astype(str).tolist()
        self.fields: dict[str, np.ndarray] = {
            name: aligned[name].fillna("").astype(str).to_numpy(dtype=object) for name in names
        }
        self._rows = lru_cache(maxsize=256)(self._rows_uncached)

    def record(self, row: int) -> tuple[str, dict[str, str]]:
        return self.titles[row], {name: values[row] for name, values in self.fields.items()}

    def allowed_rows(self, filters: Mapping[str, FilterValues] | None) -> tuple[np.ndarray | None, Hashable]:
        """Rows matching every filter (None: no filter) and a hashable key for the filter.

        Raises ValueError naming an unknown field or a filter without values.
        """
        if not filters:
            return None, None
        key = []
        for name, values in sorted(filters.items()):
            if name not in self.fields:
                known = ", ".join(self.fields) or "none"
                raise ValueError(f"unknown filter field {name!r}; filterable fields: {known}")
            wanted = [values] if isinstance(values, str) else list(values)
            if not wanted:
                raise ValueError(f"filter {name!r} has no values")
            key.append((name, tuple(sorted(set(wanted)))))
        frozen = tuple(key)
        return self._rows(frozen), frozen

    def _rows_uncached(self, key: tuple[tuple[str, tuple[str, ...]], ...]) -> np.ndarray:
        mask = np.ones(len(self.titles), dtype=bool)
        for name, values in key:
            mask &= np.isin(self.fields[name], np.asarray(values, dtype=object))
        return np.flatnonzero(mask).astype(np.int64)


# micro-batching ----------------------------------------------------------------------------------------
SearchResult = tuple[list[list[str]], np.ndarray]


@dataclass
class _Job:
    queries: list[str]
    k: int
    allowed_rows: np.ndarray | None
    filter_key: Hashable
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collect requests that arrive together and encode their queries in one encoder call.

    Why hand-written: FastAPI and uvicorn run each request on its own and have no request batching, yet a
    transformer encodes 32 queries in far less than 32 times the time of one. So requests put their queries
    on an asyncio queue drained by a single worker task: it takes the first waiting request, waits at most
    ``window_ms`` for more (or until ``max_batch`` queries are queued), encodes them all in one call in a
    worker thread (keeping the event loop free), searches the index once per (k, filter) group, and
    resolves each request's future. Under load the queue fills while a batch is being encoded, so batches
    grow by themselves; alone, a request waits at most ``window_ms``.

    With ``enabled=False`` every request is encoded on its own (still in a thread, one encoder call at a
    time: fast tokenizers are not safe to share between threads), which is the baseline to compare with.
    The worker starts with the first request on the running event loop, so the batcher also works under
    ASGI transports that skip the app's lifespan.
    """

    def __init__(self, searcher: Searcher, window_ms: float = 2.0, max_batch: int = 64, enabled: bool = True) -> None:
        self.searcher = searcher
        self.window = window_ms / 1000
        self.max_batch = max_batch
        self.enabled = enabled
        self.encoder_calls = 0
        self.queries_encoded = 0
        self._encode_lock = threading.Lock()
        self._queue: asyncio.Queue[_Job] | None = None
        self._queued = 0
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._carry: _Job | None = None

    # public ------------------------------------------------------------------------------------------
    async def search(
        self, queries: list[str], k: int, allowed_rows: np.ndarray | None = None, filter_key: Hashable = None
    ) -> SearchResult:
        """Top-``k`` ids and scores for ``queries`` (among ``allowed_rows``), batched with concurrent calls."""
        loop = asyncio.get_running_loop()
        job = _Job(list(queries), k, allowed_rows, filter_key, loop.create_future())
        if not self.enabled:
            return (await loop.run_in_executor(None, self._process, [job]))[0]
        self._ensure_worker(loop)
        assert self._queue is not None and self._full is not None
        self._queue.put_nowait(job)
        self._queued += len(job.queries)
        if self._queued >= self.max_batch:
            self._full.set()
        return await job.future

    async def aclose(self) -> None:
        """Stop the worker; requests still queued fail."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
        self._fail_pending(RuntimeError("the search service is shutting down"))
        self._worker = None

    def stats(self) -> dict[str, Any]:
        calls = self.encoder_calls
        return {
            "enabled": self.enabled,
            "window_ms": self.window * 1000,
            "max_encode_batch": self.max_batch,
            "encoder_calls": calls,
            "queries": self.queries_encoded,
            "mean_batch": self.queries_encoded / calls if calls else 0.0,
        }

    # worker ------------------------------------------------------------------------------------------
    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        self._loop = loop
        self._queue = asyncio.Queue()
        self._full = asyncio.Event()
        self._queued = 0
        self._carry = None
        self._worker = loop.create_task(self._run(), name="harnesslm-micro-batcher")

    async def _run(self) -> None:
        assert self._queue is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry if self._carry is not None else await self._queue.get()
            self._carry = None
            if self.window > 0 and self._queued < self.max_batch:
                self._full.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.window)
            jobs = self._drain(first)
            self._queued -= sum(len(job.queries) for job in jobs)
            try:
                results = await loop.run_in_executor(None, self._process, jobs)
            except Exception as error:  # every waiting request must hear about it
                logger.exception("search batch failed")
                results = [error] * len(jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _drain(self, first: _Job) -> list[_Job]:
        """``first`` plus queued jobs while they fit in ``max_batch`` queries; one that does not waits."""
        assert self._queue is not None
        jobs, size = [first], len(first.queries)
        while size < self.max_batch and not self._queue.empty():
            job = self._queue.get_nowait()
            if size + len(job.queries) > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            size += len(job.queries)
        return jobs

    def _fail_pending(self, error: BaseException) -> None:
        pending = [self._carry] if self._carry is not None else []
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            if not job.future.done():
                job.future.set_exception(error)
        self._carry = None
        self._queued = 0

    def _process(self, jobs: list[_Job]) -> list[SearchResult | BaseException]:
        """In a worker thread: one encoder call for every job's queries, one index search per (k, filter).

        When the batch fails, each job is retried alone, so a request that breaks the encoder fails by
        itself and its batch-mates still get their results.
        """
        try:
            return list(self._process_together(jobs))
        except Exception as error:
            if len(jobs) == 1:
                return [error]
            logger.warning("a search batch of %d requests failed (%s); retrying them one by one", len(jobs), error)
            results: list[SearchResult | BaseException] = []
            for job in jobs:
                try:
                    results.extend(self._process_together([job]))
                except Exception as single:
                    results.append(single)
            return results

    def _process_together(self, jobs: list[_Job]) -> list[SearchResult]:
        queries = [q for job in jobs for q in job.queries]
        with self._encode_lock:
            embeddings = self.searcher.encode(queries, batch_size=max(len(queries), 1))
            self.encoder_calls += 1
            self.queries_encoded += len(queries)
        starts = np.cumsum([0, *(len(job.queries) for job in jobs)])
        groups: dict[tuple[int, Hashable], list[int]] = {}
        for j, job in enumerate(jobs):
            groups.setdefault((job.k, job.filter_key), []).append(j)
        results: list[SearchResult | None] = [None] * len(jobs)
        for (k, _), members in groups.items():
            rows = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in members])
            ids, scores = self.searcher.index.search(embeddings[rows], k, allowed_rows=jobs[members[0]].allowed_rows)
            offset = 0
            for j in members:
                n = len(jobs[j].queries)
                results[j] = (ids[offset : offset + n], scores[offset : offset + n])
                offset += n
        return [r for r in results if r is not None]


# the app -----------------------------------------------------------------------------------------------
def create_app(
    searcher: Searcher,
    items: pd.DataFrame,
    model: ModelInfo,
    settings: ServiceSettings | None = None,
    fields: Sequence[str] | None = None,
) -> FastAPI:
    """The search app for ``searcher`` over ``items`` (columns ``item_id``, ``text`` and any field columns).

    ``fields`` picks the filterable/displayed columns (default: every column but ``item_id`` and ``text``).
    Refuses (IndexMismatchError) an encoder trained for another teacher space than the index's.
    """
    settings = settings or ServiceSettings()
    index = searcher.index
    index.check_space(model.space)
    table = ItemTable(list(index.item_ids), items, fields)
    row_of = {item_id: row for row, item_id in enumerate(index.item_ids)}
    batcher = MicroBatcher(searcher, settings.batch_window_ms, settings.max_encode_batch, settings.batching)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.aclose()

    app = FastAPI(
        title="harness-lm search",
        version="1",
        summary="Product search with a distilled query encoder over the teacher's item index.",
        description=(
            f"Serving **{model.name}** ({model.kind}{', ' + model.phase if model.phase else ''}, {model.encoder}) "
            f"over {index.meta.size:,} items. Limits: k <= {settings.max_k}, queries <= "
            f"{settings.max_query_chars} characters, batches <= {settings.max_batch} queries. Invalid requests "
            "get 422 with a `detail` message naming what was wrong."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: the default page loads Swagger UI from a CDN
        redoc_url=None,
    )
    _add_offline_docs(app)
    app.add_exception_handler(RequestValidationError, _compact_validation_error)
    app.state.batcher = batcher
    app.state.items = table
    app.state.settings = settings

    def check_k(k: int | None) -> int:
        k = settings.default_k if k is None else k
        if not 1 <= k <= settings.max_k:
            raise HTTPException(422, f"k must be between 1 and {settings.max_k}, got {k}")
        return k

    def check_query(query: str, where: str = "query") -> str:
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800" is not text
            raise HTTPException(
                422, f"{where} is not valid Unicode text (lone surrogate at character {error.start})"
            ) from None
        if len(query) > settings.max_query_chars:
            raise HTTPException(422, f"{where} has {len(query)} characters; the limit is {settings.max_query_chars}")
        normalised = normalize_query(query)
        if not normalised:
            raise HTTPException(422, f"{where} is empty")
        return normalised

    def check_filters(filters: Mapping[str, FilterValues] | None) -> tuple[np.ndarray | None, Hashable]:
        count = sum(1 if isinstance(v, str) else len(v) for v in (filters or {}).values())
        if count > settings.max_filter_values:
            raise HTTPException(422, f"filters hold {count:,} values; the limit is {settings.max_filter_values}")
        try:
            return table.allowed_rows(filters)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    async def run_search(
        queries: list[str], shown: list[str], k: int, filters: Mapping[str, FilterValues] | None, start: float
    ) -> list[SearchResponse]:
        allowed, key = check_filters(filters)
        if allowed is not None and len(allowed) == 0:
            ids: list[list[str]] = [[] for _ in queries]
            scores = np.zeros((len(queries), 0), dtype=np.float32)
        else:
            ids, scores = await batcher.search(queries, k, allowed, key)
        took = (time.perf_counter() - start) * 1000
        results = []
        for query, found, row_scores in zip(shown, ids, scores, strict=True):
            hits = []
            for item_id, score in zip(found, row_scores, strict=False):
                title, values = table.record(row_of[item_id])
                hits.append(Hit(item_id=item_id, score=float(score), title=title, fields=values))
            results.append(SearchResponse(query=query, k=k, hits=hits, took_ms=took))
        return results

    @app.get("/search", response_model=SearchResponse, summary="Search with one query")
    async def search_get(
        q: Annotated[str, Query(description="the search text")],
        k: Annotated[int | None, Query(description="number of hits (default: the default_k in /health)")] = None,
        filter_: Annotated[
            list[str] | None,
            Query(
                alias="filter",
                description="field:value equality filter, repeatable (a field repeated: any of its values)",
            ),
        ] = None,
    ) -> SearchResponse:
        start = time.perf_counter()
        filters: dict[str, list[str]] = {}
        for item in filter_ or []:
            name, sep, value = item.partition(":")
            if not sep:
                raise HTTPException(422, f"filter {item!r} is not of the form field:value")
            filters.setdefault(name, []).append(value)
        k = check_k(k)
        return (await run_search([check_query(q)], [q], k, filters, start))[0]

    @app.post("/search", response_model=SearchResponse, summary="Search with one query and optional filters")
    async def search_post(request: SearchRequest) -> SearchResponse:
        start = time.perf_counter()
        k = check_k(request.k)
        return (await run_search([check_query(request.query)], [request.query], k, request.filters, start))[0]

    @app.post("/search/batch", response_model=BatchSearchResponse, summary="Search with several queries")
    async def search_batch(request: BatchSearchRequest) -> BatchSearchResponse:
        start = time.perf_counter()
        if not request.queries:
            raise HTTPException(422, "queries is empty")
        if len(request.queries) > settings.max_batch:
            raise HTTPException(422, f"{len(request.queries)} queries; a batch holds at most {settings.max_batch}")
        k = check_k(request.k)
        queries = [check_query(q, f"queries[{i}]") for i, q in enumerate(request.queries)]
        results = await run_search(queries, list(request.queries), k, request.filters, start)
        return BatchSearchResponse(results=results, took_ms=(time.perf_counter() - start) * 1000)

    @app.get("/health", response_model=HealthResponse, summary="Model, index and batching status")
    async def health() -> HealthResponse:
        meta = index.meta
        return HealthResponse(
            status="ok",
            model=model,
            index=IndexInfo(kind=meta.kind, size=meta.size, dim=meta.dim, space=meta.space),
            teacher_space=meta.space,
            filter_fields=list(table.fields),
            limits=settings,
            batcher=BatcherStats(**batcher.stats()),
        )

    return app


MAX_ERRORS_SHOWN = 10
MAX_MESSAGE_CHARS = 200


async def _compact_validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    """422 naming each wrong field, without echoing the request back (FastAPI's default includes ``input``)."""
    errors = error.errors()
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:MAX_MESSAGE_CHARS], "type": e.get("type")}
        for e in errors[:MAX_ERRORS_SHOWN]
    ]
    if len(errors) > MAX_ERRORS_SHOWN:
        detail.append({"loc": [], "msg": f"and {len(errors) - MAX_ERRORS_SHOWN} more errors", "type": "truncated"})
    return JSONResponse(status_code=422, content={"detail": detail})


DOCS_ASSETS = "/docs-assets"


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs`` from the Swagger UI files of the ``swagger-ui-bundle`` package, so it works offline.

    Without that package, ``/docs`` says so and points at ``/openapi.json`` rather than showing a blank page.
    """
    try:
        from starlette.staticfiles import StaticFiles
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(
                "<p>Interactive docs need the <code>swagger-ui-bundle</code> package (pip install "
                "'harness-lm[serve]'). The API schema is at <a href='/openapi.json'>/openapi.json</a>.</p>"
            )
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


# from a run directory ----------------------------------------------------------------------------------
def app_from_run(
    run_dir: str | Path,
    student: str | None = None,
    encoder: EncoderKind = "auto",
    settings: ServiceSettings | None = None,
    threads: int | None = None,
) -> FastAPI:
    """The search app for a run: ``student`` (default: the first configured one, latest phase) or the teacher.

    ``encoder``: ``pytorch`` (the sentence-transformers folder), ``numpy`` (a static student computed in numpy:
    the same embeddings, an order of magnitude faster at batch 1), ``auto`` (numpy for a static student,
    else pytorch), ``onnx`` / ``onnx-int8`` (the student's ``onnx/`` export, from ``harness export``), or
    ``teacher`` (the fine-tuned teacher itself). ``threads``
    pins torch, FAISS and ONNX Runtime intra-op threads. Raises ServiceError, StepMissingError or
    IndexMismatchError (student trained for another teacher than the index) instead of starting.
    """
    from harnesslm.models.students import read_student_meta
    from harnesslm.pipeline.run_dir import RunDir
    from harnesslm.pipeline.steps import latest_phase, load_student

    if encoder not in ENCODER_KINDS:
        raise ServiceError(f"unknown encoder {encoder!r}; use one of {', '.join(ENCODER_KINDS)}")
    if threads is not None:
        _pin_threads(threads)
    run = RunDir(Path(run_dir))
    index = run.index
    query_encoder: Any
    if encoder == "teacher":
        if student:
            raise ServiceError("--student and --encoder teacher exclude each other")
        query_encoder = run.teacher
        info = ModelInfo(name="teacher", kind="teacher", encoder=encoder, space=run.teacher_space)
    else:
        names = [s.name for s in run.config.students]
        name = student or (names[0] if names else None)
        if name is None or name not in names:
            raise ServiceError(f"no student named {name!r} in {run.root}; configured: {', '.join(names) or 'none'}")
        phase = latest_phase(run, name)
        folder = run.student_dir(name, phase)
        meta = read_student_meta(folder)
        if not meta.get("teacher_space"):
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
            kind=str(meta.get("kind", run.config.student(name).kind)),
            phase=phase,
            encoder=encoder,
            # an ONNX export records the space of the student it was exported from; check that one
            space=getattr(query_encoder, "teacher_space", None) or meta["teacher_space"],
        )
    return create_app(Searcher(query_encoder, index), run.catalog, info, settings)


def _load_onnx(folder: Path, quantized: bool, threads: int | None) -> QueryEncoder:
    """The student's ONNX export (float32, or int8 with ``quantized``); onnxruntime is imported only here."""
    try:
        from harnesslm.serving.onnx_encoder import ONNX_META, OnnxQueryEncoder
    except ImportError as error:
        raise ServiceError(f"ONNX serving needs onnxruntime: pip install 'harness-lm[onnx]' ({error})") from None
    if not (folder / ONNX_META).exists():
        raise ServiceError(f"no ONNX export in {folder}: run `harness export` on this run first")
    try:
        return OnnxQueryEncoder.load(folder, quantized=quantized, threads=threads)
    except FileNotFoundError as error:
        raise ServiceError(f"{error} (`harness export` writes it)") from None


def _pin_threads(threads: int) -> None:
    """Fix torch and FAISS intra-op threads (ONNX Runtime gets them when its session is built)."""
    import faiss
    import torch

    if threads < 1:
        raise ServiceError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)

"""The HTTP search service: a query encoder plus the teacher's item index behind FastAPI.

``create_app`` builds the app from any :class:`Searcher` (a student, the teacher or an exported ONNX encoder)
and the catalog; ``harnesslm.pipeline.serve.app_from_run`` does it for a run directory (``harness serve``).

Endpoints: ``GET /search?q=...&k=10&mode=dense|lexical|hybrid``, ``POST /search`` (with equality ``filters``
on item fields), ``POST /search/batch``, ``GET /health``, and ``GET /compare``: a page that shows the student's,
the hybrid's, BM25's and (when loaded) the teacher's top 10 side by side. The OpenAPI schema is at
``/openapi.json`` (docs at ``/docs``). Requests that arrive together can be encoded in one encoder call by a
:class:`MicroBatcher`. Search responses are built as plain dicts and serialised with orjson into the response
the route returns, so FastAPI neither builds a model per hit nor validates the body again; the response models
still describe the body in the OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, get_args

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from harnesslm import extras
from harnesslm.data.text import normalize_query
from harnesslm.serving.batcher import MicroBatcher
from harnesslm.serving.compare_page import COMPARE_PAGE
from harnesslm.serving.item_table import ItemTable
from harnesslm.serving.schemas import (
    MODE_HELP,
    BatcherStats,
    BatchSearchRequest,
    BatchSearchResponse,
    CompareResponse,
    CompareSystem,
    FilterValues,
    HealthResponse,
    Hit,
    IndexInfo,
    ModelInfo,
    SearchMode,
    SearchRequest,
    SearchResponse,
    ServiceSettings,
)
from harnesslm.serving.searcher import Found, HybridSearcher, Searcher

logger = logging.getLogger(__name__)


def create_app(
    searcher: Searcher,
    items: pd.DataFrame,
    model: ModelInfo,
    settings: ServiceSettings | None = None,
    fields: Sequence[str] | None = None,
    hybrid: HybridSearcher | None = None,
    teacher: Searcher | None = None,
) -> FastAPI:
    """The search app for ``searcher`` over ``items`` (columns ``item_id``, ``text`` and any field columns).

    ``fields`` picks the filterable/displayed columns (default: every column but ``item_id`` and ``text``).
    ``hybrid`` (BM25 beside ``searcher``, with its fusion weight) enables ``mode=lexical`` and ``mode=hybrid``;
    ``teacher`` (the teacher over the same index) adds the teacher's column to ``/compare``.
    Refuses (IndexMismatchError) an encoder trained for another teacher space than the index's.
    """
    settings = settings or ServiceSettings()
    index = searcher.index
    index.check_space(model.space)
    if hybrid is not None and hybrid.dense is not searcher:
        raise ValueError("the hybrid searcher must fuse the served searcher's dense results")
    if settings.default_mode != "dense" and hybrid is None:
        raise ValueError(f"default_mode {settings.default_mode!r} needs a BM25 index (hybrid=...)")
    modes = ["dense", "lexical", "hybrid"] if hybrid is not None else ["dense"]
    table = ItemTable(list(index.item_ids), items, fields)
    row_of = {item_id: row for row, item_id in enumerate(index.item_ids)}
    batching = settings.batching is not False
    batcher = MicroBatcher(
        searcher, settings.batch_window_ms, settings.max_encode_batch, batching, inline=settings.inline_search
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (libraries, model, index, item table: about a million objects) goes out of
        # the cyclic collector's reach, so a full collection walks only what requests allocate: a full pass
        # over the start-up objects stops the event loop for tens of milliseconds, a p99 spike under load.
        gc.collect()
        gc.freeze()
        yield
        await batcher.aclose()

    app = SearchApp(
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

    core = SearchCore(settings, table, row_of, batcher, hybrid, modes)
    compared: list[tuple[str, str]] = [("student", f"{model.name} ({model.phase or model.kind}, dense)")]
    if hybrid is not None:
        compared += [("hybrid", f"{model.name} + BM25 (dense weight {hybrid.weight:g})"), ("bm25", "BM25")]
    if teacher is not None:
        compared.append(("teacher", "teacher (dense)"))
    _add_search_routes(app, core)
    _add_health_route(app, core, index, model, [name for name, _ in compared])
    _add_compare_routes(app, core, compared, teacher)
    return app


@dataclass
class SearchCore:
    """What every route shares: request checks against the settings, the search itself (dense through the
    micro-batcher, BM25 in a worker thread, or both fused) and the response body, serialised once."""

    settings: ServiceSettings
    table: ItemTable
    row_of: dict[str, int]
    batcher: MicroBatcher
    hybrid: HybridSearcher | None
    modes: list[str]

    def check_k(self, k: int | None) -> int:
        k = self.settings.default_k if k is None else k
        if not 1 <= k <= self.settings.max_k:
            raise HTTPException(422, f"k must be between 1 and {self.settings.max_k}, got {k}")
        return k

    def check_query(self, query: str, where: str = "query") -> str:
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800" is not text
            raise HTTPException(
                422, f"{where} is not valid Unicode text (lone surrogate at character {error.start})"
            ) from None
        limit = self.settings.max_query_chars
        if len(query) > limit:
            raise HTTPException(422, f"{where} has {len(query)} characters; the limit is {limit}")
        normalised = normalize_query(query)
        if not normalised:
            raise HTTPException(422, f"{where} is empty")
        return normalised

    def check_filters(self, filters: Mapping[str, FilterValues] | None) -> tuple[np.ndarray | None, Hashable]:
        count = sum(1 if isinstance(v, str) else len(v) for v in (filters or {}).values())
        if count > self.settings.max_filter_values:
            raise HTTPException(422, f"filters hold {count:,} values; the limit is {self.settings.max_filter_values}")
        try:
            return self.table.allowed_rows(filters)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    def check_mode(self, mode: SearchMode | None) -> SearchMode:
        mode = mode or self.settings.default_mode
        if mode not in self.modes:
            raise HTTPException(422, f"mode={mode} needs the catalog's BM25 index, and this service has none")
        return mode

    async def lexical_search(
        self, queries: list[str], depth: int, allowed: np.ndarray | None, timings: dict[str, float]
    ) -> Found:
        assert self.hybrid is not None
        started = time.perf_counter()
        search = self.hybrid.search_lexical
        found = await asyncio.get_running_loop().run_in_executor(None, search, queries, depth, allowed)
        timings["lexical"] = (time.perf_counter() - started) * 1000
        return found

    async def find(
        self, queries: list[str], k: int, mode: SearchMode, allowed: np.ndarray | None, key: Hashable, timings: dict
    ) -> Found:
        """Dense through the micro-batcher, BM25 in a worker thread, or both at once and fused."""
        if mode == "dense":
            return await self.batcher.search(queries, k, allowed, key, timings=timings)
        hybrid = self.hybrid
        assert hybrid is not None
        if mode == "lexical":
            return await self.lexical_search(queries, k, allowed, timings)
        depth = max(k, hybrid.depth)
        (dense_ids, _), (lexical_ids, _) = await asyncio.gather(
            self.batcher.search(queries, depth, allowed, key, timings=timings),
            self.lexical_search(queries, depth, allowed, timings),
        )
        fused = time.perf_counter()
        found = hybrid.fuse(dense_ids, lexical_ids, k)
        timings["fuse"] = (time.perf_counter() - fused) * 1000
        return found

    def hits_of(self, found: Sequence[str], scores: Sequence[float]) -> list[dict]:
        """The hits as plain dicts in the :class:`Hit` shape (serialised by orjson: no model per hit)."""
        hits = []
        for item_id, score in zip(found, scores, strict=False):
            title, values = self.table.record(self.row_of[item_id])
            hits.append({"item_id": item_id, "score": float(score), "title": title, "fields": values})
        return hits

    async def run_search(
        self,
        queries: list[str],
        shown: list[str],
        k: int,
        filters: Mapping[str, FilterValues] | None,
        start: float,
        mode: SearchMode = "dense",
    ) -> tuple[list[dict], dict[str, float]]:
        """Each query's response body (the :class:`SearchResponse` shape) and the request's stage timings."""
        timings: dict[str, float] = {"parse": (time.perf_counter() - start) * 1000}
        allowed, key = self.check_filters(filters)
        if allowed is not None and len(allowed) == 0:
            ids: list[list[str]] = [[] for _ in queries]
            scores: Sequence[Sequence[float]] = np.zeros((len(queries), 0), dtype=np.float32)
        else:
            ids, scores = await self.find(queries, k, mode, allowed, key, timings)
        looked_up = time.perf_counter()
        found_hits = [self.hits_of(found, row_scores) for found, row_scores in zip(ids, scores, strict=True)]
        now = time.perf_counter()
        results = [
            {"query": query, "k": k, "mode": mode, "hits": hits, "took_ms": (now - start) * 1000}
            for query, hits in zip(shown, found_hits, strict=True)
        ]
        timings["lookup"] = (now - looked_up) * 1000
        return results, timings

    async def search_one(
        self, q: str, k: int | None, filter_: Sequence[str], mode: SearchMode | None, start: float
    ) -> Response:
        """``GET /search``: ``field:value`` filters parsed, then one query searched."""
        filters: dict[str, list[str]] = {}
        for item in filter_:
            name, sep, value = item.partition(":")
            if not sep:
                raise HTTPException(422, f"filter {item!r} is not of the form field:value")
            filters.setdefault(name, []).append(value)
        k = self.check_k(k)
        results, timings = await self.run_search([self.check_query(q)], [q], k, filters, start, self.check_mode(mode))
        return json_response(results[0], timings, start)


def json_response(body: dict, timings: dict[str, float], start: float) -> Response:
    """``body`` serialised by orjson, with the request's breakdown in its ``Server-Timing`` header.

    The routes declare their response models for the OpenAPI schema, and return this ready response so
    FastAPI neither validates the body again nor serialises it a second time.
    """
    serialised = time.perf_counter()
    content = orjson.dumps(body)
    now = time.perf_counter()
    timings["serialize"] = (now - serialised) * 1000
    timings["total"] = (now - start) * 1000
    return Response(content, media_type="application/json", headers={"Server-Timing": server_timing(timings)})


def _add_search_routes(app: SearchApp, core: SearchCore) -> None:
    """``GET /search`` (with its fast path), ``POST /search`` and ``POST /search/batch``."""

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
        mode: Annotated[SearchMode | None, Query(description=MODE_HELP)] = None,
    ) -> Response:
        return await core.search_one(q, k, filter_ or [], mode, time.perf_counter())

    _add_fast_search_get(app, core.search_one)

    @app.post("/search", response_model=SearchResponse, summary="Search with one query and optional filters")
    async def search_post(request: SearchRequest) -> Response:
        start = time.perf_counter()
        k = core.check_k(request.k)
        query = core.check_query(request.query)
        mode = core.check_mode(request.mode)
        results, timings = await core.run_search([query], [request.query], k, request.filters, start, mode)
        return json_response(results[0], timings, start)

    @app.post("/search/batch", response_model=BatchSearchResponse, summary="Search with several queries")
    async def search_batch(request: BatchSearchRequest) -> Response:
        start = time.perf_counter()
        if not request.queries:
            raise HTTPException(422, "queries is empty")
        if len(request.queries) > core.settings.max_batch:
            limit = core.settings.max_batch
            raise HTTPException(422, f"{len(request.queries)} queries; a batch holds at most {limit}")
        k = core.check_k(request.k)
        queries = [core.check_query(q, f"queries[{i}]") for i, q in enumerate(request.queries)]
        mode = core.check_mode(request.mode)
        results, timings = await core.run_search(queries, list(request.queries), k, request.filters, start, mode)
        body = {"results": results, "took_ms": (time.perf_counter() - start) * 1000}
        return json_response(body, timings, start)


def _add_health_route(app: FastAPI, core: SearchCore, index: Any, model: ModelInfo, compared: list[str]) -> None:
    """``GET /health``: the model, the index, the limits and the batcher's counters."""

    @app.get("/health", response_model=HealthResponse, summary="Model, index and batching status")
    async def health() -> HealthResponse:
        meta = index.meta
        return HealthResponse(
            status="ok",
            model=model,
            index=IndexInfo(
                kind=meta.kind,
                size=meta.size,
                dim=meta.dim,
                space=meta.space,
                exact_fallback=hasattr(index, "exact"),
                recall_vs_exact=getattr(index, "recall", None),
                searches=dict(getattr(index, "searches", {})) or None,
            ),
            teacher_space=meta.space,
            filter_fields=list(core.table.fields),
            modes=core.modes,
            hybrid_weight=core.hybrid.weight if core.hybrid is not None else None,
            compare=compared,
            limits=core.settings,
            batcher=BatcherStats(**core.batcher.stats()),
        )


def _add_compare_routes(
    app: FastAPI, core: SearchCore, compared: list[tuple[str, str]], teacher: Searcher | None
) -> None:
    """``GET /compare`` (the side-by-side page) and ``GET /compare/search`` (every compared system's top k)."""

    async def compare_one(name: str, query: str, k: int) -> tuple[Found, float]:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if name == "teacher":
            assert teacher is not None
            found = await asyncio.get_running_loop().run_in_executor(None, teacher.search, [query], k)
        else:
            mode = {"student": "dense", "bm25": "lexical"}.get(name, "hybrid")
            found = await core.find([query], k, mode, None, None, timings)
        return found, (time.perf_counter() - started) * 1000

    @app.get("/compare", include_in_schema=False)
    async def compare_page() -> HTMLResponse:
        return HTMLResponse(COMPARE_PAGE)

    @app.get("/compare/search", response_model=CompareResponse, summary="Every compared system's top k for a query")
    async def compare_search(
        q: Annotated[str, Query(description="the search text")],
        k: Annotated[int | None, Query(description="hits per system (default: default_k)")] = None,
    ) -> CompareResponse:
        k, query = core.check_k(k), core.check_query(q)
        systems = []
        for name, label in compared:  # one after another, so each system's time is its own
            (ids, scores), took = await compare_one(name, query, k)
            hits = [Hit(**hit) for hit in core.hits_of(ids[0], scores[0])]
            systems.append(CompareSystem(name=name, label=label, hits=hits, took_ms=took))
        tops = {system.name: {hit.item_id for hit in system.hits} for system in systems}
        overlap = {f"{a}|{b}": len(tops[a] & tops[b]) for i, a in enumerate(tops) for b in list(tops)[i + 1 :]}
        return CompareResponse(query=q, k=k, systems=systems, overlap=overlap)


FAST_PARAMS = frozenset({"q", "k", "filter", "mode"})
MODES = frozenset(get_args(SearchMode))


class SearchApp(FastAPI):
    """FastAPI, with well-formed ``GET /search`` requests answered ahead of its middleware stack.

    FastAPI's parameter machinery (dependency resolution and pydantic validation of four query parameters)
    costs more per request than the static student's encoder does (~0.1 ms against ~0.2 ms here), and its
    middleware stack (error, exception, body-limit and exit-stack layers, then route matching) another
    ~0.05 ms; on the served path every such cost is queueing time under load. ``fast_search`` reads the same
    parameters itself and answers; it declines any request it does not recognise as well formed (a missing or
    repeated ``q``, a ``k`` that is not a plain integer, an unknown ``mode`` or parameter) and any that raises,
    and a declined request goes through the whole stack to FastAPI's route, so errors keep their exact shape
    and status. FastAPI's route stays in the OpenAPI schema, which describes both.
    """

    fast_search: Callable[[Scope, Receive, Send], Awaitable[bool]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_search is not None
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] == "/search"
            and await self.fast_search(scope, receive, send)
        ):
            return
        await super().__call__(scope, receive, send)


def _add_fast_search_get(app: SearchApp, search_one: Callable[..., Awaitable[Response]]) -> None:
    """Set ``app.fast_search``: the plain reading of ``GET /search`` (see :class:`SearchApp`)."""

    async def fast_search(scope: Scope, receive: Receive, send: Send) -> bool:
        start = time.perf_counter()
        params = QueryParams(scope["query_string"])
        q, k, mode = params.getlist("q"), params.getlist("k"), params.getlist("mode")
        if (
            len(q) != 1
            or len(k) > 1
            or (k and not (k[0].isascii() and k[0].isdigit()))
            or len(mode) > 1
            or (mode and mode[0] not in MODES)
            or not FAST_PARAMS.issuperset(params.keys())
        ):
            return False
        try:
            response = await search_one(
                q[0], int(k[0]) if k else None, params.getlist("filter"), mode[0] if mode else None, start
            )
        except Exception:  # FastAPI's route raises it again and answers it (422, 500) as usual
            return False
        await response(scope, receive, send)
        return True

    app.fast_search = fast_search


SERVER_TIMING_STAGES = ("parse", "queue", "encode", "search", "lexical", "fuse", "lookup", "serialize", "total")


def server_timing(timings: Mapping[str, float]) -> str:
    """A ``Server-Timing`` header value (W3C Server Timing) from stage -> milliseconds, in request order.

    parse: request validation and query normalisation; queue: waiting for the micro-batcher; encode: the
    encoder call of the request's batch; search: the index search; lexical: the BM25 search (lexical and
    hybrid modes, beside the dense one); fuse: the rank fusion; lookup: item records for the hits. JSON
    serialisation happens after the header is written, so it is the gap between ``total`` and what the
    client sees.
    """
    return ", ".join(f"{name};dur={timings[name]:.3f}" for name in SERVER_TIMING_STAGES if name in timings)


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
    swagger_ui_path = None
    if extras.available("serve", ("swagger_ui_bundle",)):
        from starlette.staticfiles import StaticFiles
        from swagger_ui_bundle import swagger_ui_path

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

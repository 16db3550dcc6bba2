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
from harnesslm.serving.hot_swap import HotSwap, Reloading, add_admin_route
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
    reload: Reloading | None = None,
) -> FastAPI:
    """The search app for ``searcher`` over ``items`` (columns ``item_id``, ``text`` and any field columns).

    ``fields`` picks the filterable/displayed columns (default: every column but ``item_id`` and ``text``).
    ``hybrid`` (BM25 beside ``searcher``, with its fusion weight) enables ``mode=lexical`` and ``mode=hybrid``;
    ``teacher`` (the teacher over the same index) adds the teacher's column to ``/compare``.
    Refuses (IndexMismatchError) an encoder trained for another teacher space than the index's.

    ``reload`` (how to load a new :class:`ServedPair`, e.g. from the run directory again, and when) makes the
    served pair swappable without a restart, through ``POST /admin/reload``, ``SIGHUP`` or a change of the
    watched files: see :mod:`harnesslm.serving.hot_swap`.
    """
    settings = settings or ServiceSettings()
    return app_for_pair(ServedPair.build(searcher, items, model, settings, fields, hybrid, teacher), settings, reload)


def app_for_pair(served: ServedPair, settings: ServiceSettings, reload: Reloading | None = None) -> FastAPI:
    """The search app serving ``served`` with ``settings``' limits (see :func:`create_app`)."""
    model = served.model
    core = SearchCore(settings, served)
    swapper = None
    if reload is not None:
        swapper = HotSwap(core, reload.load, reload.watched, reload.poll_seconds, reload.on_sighup)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (libraries, model, index, item table: about a million objects) goes out of
        # the cyclic collector's reach, so a full collection walks only what requests allocate: a full pass
        # over the start-up objects stops the event loop for tens of milliseconds, a p99 spike under load.
        gc.collect()
        gc.freeze()
        if swapper is not None:
            swapper.start()
        yield
        if swapper is not None:
            await swapper.stop()
        await core.served.batcher.aclose()

    app = SearchApp(
        title="harness-lm search",
        version="1",
        summary="Product search with a distilled query encoder over the teacher's item index.",
        description=(
            f"Serving **{model.name}** ({model.kind}{', ' + model.phase if model.phase else ''}, {model.encoder}) "
            f"over {served.index.meta.size:,} items. Limits: k <= {settings.max_k}, queries <= "
            f"{settings.max_query_chars} characters, batches <= {settings.max_batch} queries. Invalid requests "
            "get 422 with a `detail` message naming what was wrong."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: the default page loads Swagger UI from a CDN
        redoc_url=None,
    )
    _add_offline_docs(app)
    app.add_exception_handler(RequestValidationError, _compact_validation_error)
    app.state.core = core
    app.state.settings = settings
    app.state.hot_swap = swapper
    _add_search_routes(app, core)
    _add_health_route(app, core)
    _add_compare_routes(app, core)
    if swapper is not None:
        add_admin_route(app, swapper, reload.admin_token if reload is not None else None)
    return app


@dataclass(frozen=True)
class ServedPair:
    """The query encoder and the index it was trained for, with all that is derived from them (the item table,
    the micro-batcher, BM25 beside them, the teacher for ``/compare``): what a hot swap replaces in one step.

    A request reads the pair once and uses only it, so it sees either the old pair or the new one, never a
    student with another index's items."""

    searcher: Searcher
    model: ModelInfo
    table: ItemTable
    row_of: dict[str, int]
    batcher: MicroBatcher
    hybrid: HybridSearcher | None
    teacher: Searcher | None
    modes: list[str]
    compared: list[tuple[str, str]]

    @property
    def index(self) -> Any:
        return self.searcher.index

    @classmethod
    def build(
        cls,
        searcher: Searcher,
        items: pd.DataFrame,
        model: ModelInfo,
        settings: ServiceSettings,
        fields: Sequence[str] | None = None,
        hybrid: HybridSearcher | None = None,
        teacher: Searcher | None = None,
    ) -> ServedPair:
        """Check that the pair belongs together (the encoder's teacher space is the index's), then derive the
        rest. Raises IndexMismatchError or ValueError."""
        index = searcher.index
        index.check_space(model.space)
        if hybrid is not None and hybrid.dense is not searcher:
            raise ValueError("the hybrid searcher must fuse the served searcher's dense results")
        if settings.default_mode != "dense" and hybrid is None:
            raise ValueError(f"default_mode {settings.default_mode!r} needs a BM25 index (hybrid=...)")
        modes = ["dense", "lexical", "hybrid"] if hybrid is not None else ["dense"]
        table = ItemTable(list(index.item_ids), items, fields)
        row_of = {item_id: row for row, item_id in enumerate(index.item_ids)}
        batcher = MicroBatcher(
            searcher,
            settings.batch_window_ms,
            settings.max_encode_batch,
            settings.batching is not False,
            inline=settings.inline_search,
        )
        compared: list[tuple[str, str]] = [("student", f"{model.name} ({model.phase or model.kind}, dense)")]
        if hybrid is not None:
            compared += [("hybrid", f"{model.name} + BM25 (dense weight {hybrid.weight:g})"), ("bm25", "BM25")]
        if teacher is not None:
            compared.append(("teacher", "teacher (dense)"))
        return cls(searcher, model, table, row_of, batcher, hybrid, teacher, modes, compared)


@dataclass
class SearchCore:
    """What every route shares: request checks against the settings, the search itself (dense through the
    micro-batcher, BM25 in a worker thread, or both fused) and the response body, serialised once.

    ``served`` is the current :class:`ServedPair`; a swap assigns a new one (one attribute, on the event
    loop), and each request reads it once at its start."""

    settings: ServiceSettings
    served: ServedPair

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

    def check_filters(
        self, served: ServedPair, filters: Mapping[str, FilterValues] | None
    ) -> tuple[np.ndarray | None, Hashable]:
        count = sum(1 if isinstance(v, str) else len(v) for v in (filters or {}).values())
        if count > self.settings.max_filter_values:
            raise HTTPException(422, f"filters hold {count:,} values; the limit is {self.settings.max_filter_values}")
        try:
            return served.table.allowed_rows(filters)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    def check_mode(self, served: ServedPair, mode: SearchMode | None) -> SearchMode:
        mode = mode or self.settings.default_mode
        if mode not in served.modes:
            raise HTTPException(422, f"mode={mode} needs the catalog's BM25 index, and this service has none")
        return mode

    @staticmethod
    async def lexical_search(
        served: ServedPair, queries: list[str], depth: int, allowed: np.ndarray | None, timings: dict[str, float]
    ) -> Found:
        assert served.hybrid is not None
        started = time.perf_counter()
        search = served.hybrid.search_lexical
        found = await asyncio.get_running_loop().run_in_executor(None, search, queries, depth, allowed)
        timings["lexical"] = (time.perf_counter() - started) * 1000
        return found

    async def find(
        self,
        served: ServedPair,
        queries: list[str],
        k: int,
        mode: SearchMode,
        allowed: np.ndarray | None,
        key: Hashable,
        timings: dict,
    ) -> Found:
        """Dense through the micro-batcher, BM25 in a worker thread, or both at once and fused."""
        if mode == "dense":
            return await served.batcher.search(queries, k, allowed, key, timings=timings)
        hybrid = served.hybrid
        assert hybrid is not None
        if mode == "lexical":
            return await self.lexical_search(served, queries, k, allowed, timings)
        depth = max(k, hybrid.depth)
        (dense_ids, _), (lexical_ids, _) = await asyncio.gather(
            served.batcher.search(queries, depth, allowed, key, timings=timings),
            self.lexical_search(served, queries, depth, allowed, timings),
        )
        fused = time.perf_counter()
        found = hybrid.fuse(dense_ids, lexical_ids, k)
        timings["fuse"] = (time.perf_counter() - fused) * 1000
        return found

    @staticmethod
    def hits_of(served: ServedPair, found: Sequence[str], scores: Sequence[float]) -> list[dict]:
        """The hits as plain dicts in the :class:`Hit` shape (serialised by orjson: no model per hit)."""
        hits = []
        for item_id, score in zip(found, scores, strict=False):
            title, values = served.table.record(served.row_of[item_id])
            hits.append({"item_id": item_id, "score": float(score), "title": title, "fields": values})
        return hits

    async def run_search(
        self,
        queries: list[str],
        shown: list[str],
        k: int,
        filters: Mapping[str, FilterValues] | None,
        start: float,
        mode: SearchMode | None = None,
    ) -> tuple[list[dict], dict[str, float]]:
        """Each query's response body (the :class:`SearchResponse` shape) and the request's stage timings."""
        served = self.served  # read once: this request sees one pair from here on, even across a swap
        timings: dict[str, float] = {"parse": (time.perf_counter() - start) * 1000}
        mode = self.check_mode(served, mode)
        allowed, key = self.check_filters(served, filters)
        if allowed is not None and len(allowed) == 0:
            ids: list[list[str]] = [[] for _ in queries]
            scores: Sequence[Sequence[float]] = np.zeros((len(queries), 0), dtype=np.float32)
        else:
            ids, scores = await self.find(served, queries, k, mode, allowed, key, timings)
        looked_up = time.perf_counter()
        found_hits = [self.hits_of(served, found, row_scores) for found, row_scores in zip(ids, scores, strict=True)]
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
        results, timings = await self.run_search([self.check_query(q)], [q], k, filters, start, mode)
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
        results, timings = await core.run_search([query], [request.query], k, request.filters, start, request.mode)
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
        results, timings = await core.run_search(
            queries, list(request.queries), k, request.filters, start, request.mode
        )
        body = {"results": results, "took_ms": (time.perf_counter() - start) * 1000}
        return json_response(body, timings, start)


def _add_health_route(app: FastAPI, core: SearchCore) -> None:
    """``GET /health``: the model, the index, the limits, the batcher's counters and the hot swaps."""

    @app.get("/health", response_model=HealthResponse, summary="Model, index and batching status")
    async def health() -> HealthResponse:
        served = core.served
        index = served.index
        meta = index.meta
        swapper = getattr(app.state, "hot_swap", None)
        return HealthResponse(
            status="ok",
            model=served.model,
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
            filter_fields=list(served.table.fields),
            modes=served.modes,
            hybrid_weight=served.hybrid.weight if served.hybrid is not None else None,
            compare=[name for name, _ in served.compared],
            limits=core.settings,
            batcher=BatcherStats(**served.batcher.stats()),
            swaps=swapper.stats() if swapper is not None else None,
        )


def _add_compare_routes(app: FastAPI, core: SearchCore) -> None:
    """``GET /compare`` (the side-by-side page) and ``GET /compare/search`` (every compared system's top k)."""

    async def compare_one(served: ServedPair, name: str, query: str, k: int) -> tuple[Found, float]:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if name == "teacher":
            assert served.teacher is not None
            found = await asyncio.get_running_loop().run_in_executor(None, served.teacher.search, [query], k)
        else:
            mode = {"student": "dense", "bm25": "lexical"}.get(name, "hybrid")
            found = await core.find(served, [query], k, mode, None, None, timings)
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
        served = core.served
        systems = []
        for name, label in served.compared:  # one after another, so each system's time is its own
            (ids, scores), took = await compare_one(served, name, query, k)
            hits = [Hit(**hit) for hit in core.hits_of(served, ids[0], scores[0])]
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

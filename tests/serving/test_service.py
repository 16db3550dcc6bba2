"""The HTTP search service on a tiny run: search, batch, filters, limits, health, micro-batching, start-up checks."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from harnesslm.cli.app import app as cli
from harnesslm.index.item_index import IndexMismatchError
from harnesslm.pipeline.serve import app_from_run
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.http_app import create_app
from harnesslm.serving.schemas import ModelInfo, ServiceSettings
from harnesslm.serving.searcher import Searcher
from harnesslm.serving.service_error import ServiceError
from harnesslm.students.meta import STUDENT_META
from harnesslm.students.numpy_encoder import StaticQueryEncoder

K = 5


@pytest.fixture(scope="module")
def client(run: RunDir):
    with TestClient(app_from_run(run.root)) as test_client:
        yield test_client


class CountingEncoder:
    """Wraps a SentenceTransformer and records the size of every encode call."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls: list[int] = []

    def encode(self, queries: list[str], batch_size: int = 32) -> np.ndarray:
        self.calls.append(len(queries))
        return self.model.encode(queries, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)


def counting_app(run: RunDir, **settings) -> tuple[FastAPI, CountingEncoder]:
    phase = latest_phase(run, "static")
    encoder = CountingEncoder(load_student(run, "static", phase))
    info = ModelInfo(name="static", kind="static", phase=phase, encoder="pytorch", space=run.index.meta.space)
    return create_app(Searcher(encoder, run.index), run.catalog, info, ServiceSettings(**settings)), encoder


# search ----------------------------------------------------------------------------------------------------
def test_search_returns_k_catalog_items_sorted_by_score(client: TestClient, run: RunDir, queries: list[str]) -> None:
    response = client.get("/search", params={"q": queries[0], "k": K})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == queries[0] and body["k"] == K
    hits = body["hits"]
    assert len(hits) == K
    catalog = run.catalog.set_index("item_id")
    for hit in hits:
        assert hit["title"] == catalog.loc[hit["item_id"], "text"]
        assert hit["fields"] == {
            "brand": catalog.loc[hit["item_id"], "brand"],
            "category": catalog.loc[hit["item_id"], "category"],
        }
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)
    posted = client.post("/search", json={"query": queries[0], "k": K}).json()
    assert posted["hits"] == hits
    assert len(client.get("/search", params={"q": queries[0]}).json()["hits"]) == 10  # default k


def _server_timing(response: httpx.Response) -> dict[str, float]:
    """The Server-Timing header as {stage: milliseconds}, in the header's order."""
    return {
        name: float(duration)
        for name, _, duration in (part.partition(";dur=") for part in response.headers["Server-Timing"].split(", "))
    }


@pytest.mark.parametrize("batching", [True, False])
def test_server_timing_breaks_each_request_into_its_stages(run: RunDir, queries: list[str], batching: bool) -> None:
    app, encoder = counting_app(run, batching=batching)
    with TestClient(app) as client:
        for response in (
            client.get("/search", params={"q": queries[0], "k": K}),
            client.post("/search", json={"query": queries[0], "k": K}),
            client.post("/search/batch", json={"queries": queries[:3], "k": K}),
        ):
            assert response.status_code == 200, response.text
            stages = _server_timing(response)
            assert list(stages) == ["parse", "queue", "encode", "search", "lookup", "serialize", "total"]
            assert all(value >= 0 for value in stages.values())
            parts = sum(value for name, value in stages.items() if name != "total")
            assert parts <= stages["total"] + 0.05  # stages do not overlap; rounding to 1 us each
    assert encoder.calls == [1, 1, 3]


def test_batch_equals_single_searches(client: TestClient, queries: list[str]) -> None:
    response = client.post("/search/batch", json={"queries": queries[:4], "k": K})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["query"] for r in results] == queries[:4]
    for query, result in zip(queries[:4], results, strict=True):
        single = client.post("/search", json={"query": query, "k": K}).json()["hits"]
        assert [h["item_id"] for h in result["hits"]] == [h["item_id"] for h in single]
        np.testing.assert_allclose([h["score"] for h in result["hits"]], [h["score"] for h in single], atol=1e-5)


def test_filters_return_only_matching_items(client: TestClient, run: RunDir, queries: list[str]) -> None:
    catalog = run.catalog
    brand = catalog["brand"].value_counts().index[0]
    body = client.post("/search", json={"query": queries[0], "k": K, "filters": {"brand": brand}}).json()
    assert len(body["hits"]) == min(K, int((catalog["brand"] == brand).sum()))
    assert {h["fields"]["brand"] for h in body["hits"]} == {brand}
    # the filter applies inside the index: same ids as the unfiltered full ranking, filtered afterwards
    everything = client.post("/search", json={"query": queries[0], "k": 100}).json()["hits"]
    ranked = [h["item_id"] for h in everything if h["fields"]["brand"] == brand][:K]
    if len(ranked) == K:
        assert [h["item_id"] for h in body["hits"]] == ranked

    two = ["tools", "paint"]
    body = client.post("/search", json={"query": queries[1], "k": 20, "filters": {"category": two}}).json()
    assert body["hits"] and {h["fields"]["category"] for h in body["hits"]} <= set(two)
    both = {"category": "tools", "brand": catalog.loc[catalog["category"] == "tools", "brand"].iloc[0]}
    body = client.post("/search", json={"query": queries[1], "k": K, "filters": both}).json()
    assert body["hits"] and all(h["fields"] == both for h in body["hits"])
    got = client.get("/search", params=[("q", queries[2]), ("k", "8"), ("filter", "category:tools")]).json()
    assert got["hits"] and {h["fields"]["category"] for h in got["hits"]} == {"tools"}
    none = client.post("/search", json={"query": queries[0], "filters": {"brand": "no such brand"}}).json()
    assert none["hits"] == []
    batch = client.post("/search/batch", json={"queries": queries[:3], "k": K, "filters": {"category": "tools"}})
    assert all(h["fields"]["category"] == "tools" for r in batch.json()["results"] for h in r["hits"])


@pytest.mark.parametrize(
    ("method", "path", "payload", "message"),
    [
        ("post", "/search", {"query": "   "}, "query is empty"),
        ("get", "/search", {"q": ""}, "query is empty"),
        ("post", "/search", {"query": "x" * 513}, "limit is 512"),
        ("post", "/search", {"query": "drill", "k": 0}, "k must be between 1 and 100"),
        ("get", "/search", {"q": "drill", "k": 101}, "k must be between 1 and 100"),
        ("post", "/search", {"query": "drill", "filters": {"colour": "red"}}, "unknown filter field 'colour'"),
        ("post", "/search", {"query": "drill", "filters": {"brand": []}}, "filter 'brand' has no values"),
        ("get", "/search", {"q": "drill", "filter": "brand"}, "field:value"),
        ("post", "/search/batch", {"queries": ["drill"] * 65}, "at most 64"),
        ("post", "/search/batch", {"queries": []}, "queries is empty"),
        ("post", "/search/batch", {"queries": ["drill", " "]}, "queries[1] is empty"),
    ],
)
def test_invalid_requests_are_422_naming_the_problem(
    client: TestClient, method: str, path: str, payload: dict, message: str
) -> None:
    response = client.get(path, params=payload) if method == "get" else client.post(path, json=payload)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_the_fast_get_route_answers_as_fastapis_route_would(
    client: TestClient, queries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /search is answered ahead of FastAPI's stack; odd or failing requests go through to FastAPI's route."""
    api_routes = [r for r in client.app.router.routes if isinstance(r, APIRoute) and r.path == "/search"]
    api_get = next(r for r in api_routes if "GET" in r.methods)
    fallbacks: list[str] = []
    handle = api_get.handle

    async def counted(scope, receive, send):
        fallbacks.append(scope["query_string"].decode())
        await handle(scope, receive, send)

    monkeypatch.setattr(api_get, "handle", counted)
    fast = client.get("/search", params=[("q", queries[2]), ("k", "8"), ("filter", "category:tools")])
    assert fast.status_code == 200 and fallbacks == []
    assert (
        fast.json()["hits"]
        == client.post("/search", json={"query": queries[2], "k": 8, "filters": {"category": ["tools"]}}).json()["hits"]
    )
    for params, loc in (({"q": "drill", "k": "many"}, ["query", "k"]), ({"k": "3"}, ["query", "q"])):
        response = client.get("/search", params=params)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc  # FastAPI's shape
    assert client.get("/search", params={"q": "drill", "mode": "nope"}).status_code == 422
    assert client.get("/search", params={"q": "drill", "limit": "3"}).status_code == 200  # extra keys: ignored
    assert len(fallbacks) == 4
    # Well formed but refused while answering (k above max_k): FastAPI's route answers it again, with its 422.
    too_many = client.get("/search", params={"q": "drill", "k": "1000"})
    assert too_many.status_code == 422 and "k must be between" in too_many.json()["detail"]
    assert fallbacks[-1] == "q=drill&k=1000"


def test_malformed_bodies_are_rejected_by_the_schema(client: TestClient) -> None:
    assert client.post("/search", json={"k": 3}).status_code == 422  # no query
    assert client.post("/search", json={"query": "drill", "k": "many"}).status_code == 422
    assert client.post("/search", json={"query": "drill", "limit": 3}).status_code == 422  # unknown key


def test_health_and_openapi(client: TestClient, run: RunDir) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["model"]["name"] == "static" and health["model"]["phase"] == "aligned"
    assert health["index"]["size"] == len(run.catalog)
    assert health["teacher_space"] == run.index.meta.space == run.teacher_space
    assert health["filter_fields"] == ["brand", "category"]
    assert health["limits"]["max_k"] == 100
    schema = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/health"} <= set(schema["paths"])
    assert {"get", "post"} <= set(schema["paths"]["/search"])
    assert {"SearchRequest", "SearchResponse", "Hit", "BatchSearchRequest"} <= set(schema["components"]["schemas"])
    assert "description" in schema["components"]["schemas"]["SearchRequest"]["properties"]["filters"]


# micro-batching --------------------------------------------------------------------------------------------
async def _concurrent(app: FastAPI, queries: list[str]) -> list[dict]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        responses = await asyncio.gather(*(http.post("/search", json={"query": q, "k": K}) for q in queries))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def test_batcher_groups_concurrent_requests_and_matches_unbatched(run: RunDir, queries: list[str]) -> None:
    batched_app, batched = counting_app(run, batch_window_ms=200)
    together = asyncio.run(_concurrent(batched_app, queries))
    assert sum(batched.calls) == len(queries)
    assert len(batched.calls) < len(queries) and max(batched.calls) > 1, batched.calls

    plain_app, plain = counting_app(run, batching=False)
    alone = asyncio.run(_concurrent(plain_app, queries))
    assert plain.calls == [1] * len(queries)
    for a, b in zip(together, alone, strict=True):
        assert [h["item_id"] for h in a["hits"]] == [h["item_id"] for h in b["hits"]]
        np.testing.assert_allclose([h["score"] for h in a["hits"]], [h["score"] for h in b["hits"]], atol=1e-5)

    capped_app, capped = counting_app(run, batch_window_ms=200, max_encode_batch=4)
    asyncio.run(_concurrent(capped_app, queries))
    assert max(capped.calls) <= 4 and sum(capped.calls) == len(queries)
    with TestClient(capped_app) as test_client:
        stats = test_client.get("/health").json()["batcher"]
    assert stats["encoder_calls"] == len(capped.calls) and stats["queries"] == len(queries)


def test_lone_requests_skip_the_batching_window(run: RunDir, queries: list[str]) -> None:
    """One client at a time: nothing can join its batch, so its request must not wait out the window."""
    app, encoder = counting_app(run, batch_window_ms=2_000)
    with TestClient(app) as client:
        for query in queries[:3]:
            response = client.get("/search", params={"q": query, "k": K})
            assert response.status_code == 200, response.text
            assert _server_timing(response)["queue"] < 1_000, response.headers["Server-Timing"]
    assert encoder.calls == [1, 1, 1]


# start-up checks ---------------------------------------------------------------------------------------
def test_mismatched_teacher_space_refuses_to_start(run: RunDir, tmp_path: Path) -> None:
    info = ModelInfo(name="static", kind="static", encoder="pytorch", space="not-the-index-space")
    with pytest.raises(IndexMismatchError, match="rebuild the index"):
        create_app(Searcher(object(), run.index), run.catalog, info)  # type: ignore[arg-type]

    stale = tmp_path / "run"
    shutil.copytree(run.root, stale)
    meta_path = stale / "students" / "static" / "aligned" / STUDENT_META
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "teacher_space": "0123456789abcdef"}))
    with pytest.raises(IndexMismatchError):
        app_from_run(stale)
    result = CliRunner().invoke(cli, ["serve", str(stale)])
    assert result.exit_code == 2
    assert "rebuild the index" in result.output and "Traceback" not in result.output


def test_app_from_run_errors_are_clear(run: RunDir) -> None:
    with pytest.raises(ServiceError, match="harness export"):
        app_from_run(run.root, encoder="onnx")
    with pytest.raises(ServiceError, match="no student named 'nope'"):
        app_from_run(run.root, student="nope")
    with pytest.raises(ServiceError, match="unknown encoder"):
        app_from_run(run.root, encoder="tensorrt")  # type: ignore[arg-type]
    result = CliRunner().invoke(cli, ["serve", str(run.root), "--encoder", "onnx-int8"])
    assert result.exit_code == 2 and "harness export" in result.output


def test_onnx_export_serves_the_same_items(run: RunDir, tmp_path: Path, queries: list[str]) -> None:
    pytest.importorskip("onnxruntime")
    from harnesslm.pipeline.export import export

    copy = RunDir(shutil.copytree(run.root, tmp_path / "run"))
    export(copy)
    with TestClient(app_from_run(copy.root)) as test_client:
        reference = test_client.post("/search/batch", json={"queries": queries, "k": K}).json()["results"]
    for encoder in ("onnx", "onnx-int8"):
        with TestClient(app_from_run(copy.root, encoder=encoder, threads=1)) as test_client:
            assert test_client.get("/health").json()["model"]["encoder"] == encoder
            results = test_client.post("/search/batch", json={"queries": queries, "k": K}).json()["results"]
        for got, want in zip(results, reference, strict=True):
            tolerance = 1e-4 if encoder == "onnx" else 2e-2
            np.testing.assert_allclose(
                [h["score"] for h in got["hits"]], [h["score"] for h in want["hits"]], atol=tolerance
            )
            if encoder == "onnx":
                assert [h["item_id"] for h in got["hits"]] == [h["item_id"] for h in want["hits"]]


def test_cli_serve_runs_uvicorn_with_the_app(run: RunDir, monkeypatch: pytest.MonkeyPatch, queries) -> None:
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    args = ["serve", str(run.root), "--encoder", "teacher", "--port", "8123", "--max-k", "7", "--threads", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert served["port"] == 8123 and served["host"] == "127.0.0.1"
    with TestClient(served["app"]) as test_client:
        health = test_client.get("/health").json()
        assert health["model"]["encoder"] == "teacher" and health["limits"]["max_k"] == 7
        assert test_client.get("/search", params={"q": queries[0], "k": 8}).status_code == 422
        assert len(test_client.get("/search", params={"q": queries[0], "k": 7}).json()["hits"]) == 7
    assert CliRunner().invoke(cli, ["serve", "--help"]).exit_code == 0


# hostile requests (issue 11) ---------------------------------------------------------------------------------
def test_a_lone_surrogate_is_a_422_not_a_500(client: TestClient) -> None:
    body = '{"query": "drill \\ud800 bit"}'  # valid JSON, but not encodable text
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not valid Unicode" in response.json()["detail"]


class PoisonedEncoder(CountingEncoder):
    """Fails any encode call that holds the word ``poison``, as a tokenizer would on input it cannot take."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.attempts: list[int] = []

    def encode(self, queries: list[str], batch_size: int = 32) -> np.ndarray:
        self.attempts.append(len(queries))
        if any("poison" in q for q in queries):
            raise TypeError("the tokenizer cannot take this input")
        return super().encode(queries, batch_size)


def test_one_bad_request_cannot_fail_its_batch_mates(run: RunDir, queries: list[str]) -> None:
    phase = latest_phase(run, "static")
    encoder = PoisonedEncoder(load_student(run, "static", phase))
    info = ModelInfo(name="static", kind="static", phase=phase, encoder="pytorch", space=run.index.meta.space)
    app = create_app(Searcher(encoder, run.index), run.catalog, info, ServiceSettings(batch_window_ms=200))

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            texts = [*queries[:6], "poison pill", *queries[6:12]]
            return await asyncio.gather(*(http.post("/search", json={"query": q, "k": K}) for q in texts))

    responses = asyncio.run(send())
    assert max(encoder.attempts) > 1, "the requests were batched together"
    codes = [r.status_code for r in responses]
    assert codes[6] == 500
    assert codes[:6] + codes[7:] == [200] * (len(codes) - 1), codes


@pytest.mark.parametrize("k", ["5", True, 2.5])
def test_k_must_be_a_json_integer(client: TestClient, k) -> None:
    assert client.post("/search", json={"query": "drill", "k": k}).status_code == 422


def test_filter_values_are_capped(client: TestClient) -> None:
    response = client.post("/search", json={"query": "drill", "filters": {"brand": [f"b{i}" for i in range(300)]}})
    assert response.status_code == 422
    assert "limit is 256" in response.json()["detail"]


def test_a_422_does_not_echo_the_request(client: TestClient) -> None:
    payload = {"query": "drill", "junk": "x" * 60_000, "k": "many"}
    response = client.post("/search", json=payload)
    assert response.status_code == 422
    assert len(response.content) < 2_000
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {("body", "junk"), ("body", "k")}


def test_docs_work_offline(client: TestClient) -> None:
    pytest.importorskip("swagger_ui_bundle", reason="swagger-ui-bundle (serve extra) is not installed")
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_static_students_serve_on_the_numpy_path_with_the_same_results(run: RunDir, queries: list[str]) -> None:
    model = load_student(run, "static", latest_phase(run, "static"))
    fast = StaticQueryEncoder.from_model(model)
    assert fast is not None
    texts = [*queries, "", "qqqzzz unknown-token soup", queries[0]]
    reference = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_allclose(fast.encode(texts), reference, atol=1e-5)
    np.testing.assert_allclose(fast.encode(texts[:1]), reference[:1], atol=1e-5)  # the batch-1 path
    assert StaticQueryEncoder.from_model(run.teacher) is None  # a transformer is not a static model

    results = {}
    for encoder in ("auto", "pytorch"):
        with TestClient(app_from_run(run.root, encoder=encoder)) as test_client:
            results[encoder] = test_client.post("/search/batch", json={"queries": queries, "k": K}).json()
            assert test_client.get("/health").json()["model"]["encoder"] == ("numpy" if encoder == "auto" else encoder)
    for got, want in zip(results["auto"]["results"], results["pytorch"]["results"], strict=True):
        assert [h["item_id"] for h in got["hits"]] == [h["item_id"] for h in want["hits"]]

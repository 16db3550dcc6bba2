"""Search modes (dense, lexical, hybrid), the HNSW serving index with exact fallback, and serving defaults."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from harnesslm.cli.app import app as cli
from harnesslm.index.fusion import fuse_scored
from harnesslm.pipeline.evaluate import validation_weight
from harnesslm.pipeline.serve import ServeOptions, app_from_env, app_from_run, serving_threads
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.serving.schemas import ServiceSettings
from harnesslm.serving.searcher import HybridSearcher, Searcher

K = 5


@pytest.fixture(scope="module")
def client(run: RunDir):
    with TestClient(app_from_run(run.root)) as test_client:
        yield test_client


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["item_id"] for hit in response.json()["hits"]]


def test_lexical_mode_is_bm25_over_the_catalog(client: TestClient, run: RunDir, queries: list[str]) -> None:
    for query in queries[:4]:
        want = [item for item, _ in run.lexical_index.search([query], K)[0]]
        response = client.get("/search", params={"q": query, "k": K, "mode": "lexical"})
        assert ids(response) == want
        assert response.json()["mode"] == "lexical"
    assert (run.lexical_dir / "catalog.sha256").exists()  # built once, kept in the run


def test_hybrid_mode_fuses_dense_and_bm25_with_the_validation_weight(
    client: TestClient, run: RunDir, queries: list[str]
) -> None:
    health = client.get("/health").json()
    assert health["modes"] == ["dense", "lexical", "hybrid"]
    label = f"static ({latest_phase(run, 'static')})"
    student = load_student(run, "static", latest_phase(run, "static"))
    searcher = Searcher(student, run.index)
    weight, _, _ = validation_weight(run, searcher, run.lexical_index)
    assert health["hybrid_weight"] == weight
    assert json.loads((run.serving_dir / "hybrid.json").read_text())[label]["weight"] == weight
    hybrid = HybridSearcher(searcher, run.lexical_index, weight)
    for query in queries[:4]:
        dense = searcher.search([query], 100)[0][0]
        lexical = [item for item, _ in run.lexical_index.search([query], 100)[0]]
        want = [item for item, _ in fuse_scored(dense, lexical, weight, K)]
        response = client.post("/search", json={"query": query, "k": K, "mode": "hybrid"})
        assert ids(response) == want == hybrid.search([query], K, mode="hybrid")[0][0]
        timing = response.headers["Server-Timing"]
        assert "lexical;dur=" in timing and "fuse;dur=" in timing and "encode;dur=" in timing


def test_modes_respect_filters(client: TestClient, run: RunDir, queries: list[str]) -> None:
    brand = run.catalog["brand"].iloc[0]
    for mode in ("lexical", "hybrid"):
        body = {"query": queries[0], "k": 20, "filters": {"brand": brand}, "mode": mode}
        hits = client.post("/search", json=body).json()["hits"]
        assert hits and all(hit["fields"]["brand"] == brand for hit in hits)


def test_modes_need_the_lexical_index(run: RunDir, queries: list[str]) -> None:
    with TestClient(app_from_run(run.root, lexical=False)) as test_client:
        assert test_client.get("/health").json()["modes"] == ["dense"]
        response = test_client.get("/search", params={"q": queries[0], "mode": "hybrid"})
        assert response.status_code == 422 and "BM25" in response.json()["detail"]
        assert test_client.get("/search", params={"q": queries[0], "mode": "nope"}).status_code == 422


def test_hnsw_serving_index_records_recall_and_falls_back_to_exact(run: RunDir, queries: list[str]) -> None:
    with TestClient(app_from_run(run.root, index="exact")) as test_client:
        exact = [ids(test_client.get("/search", params={"q": q, "k": K})) for q in queries]
    settings = ServiceSettings(max_k=200, batching=None)
    with TestClient(app_from_run(run.root, settings=settings, index="hnsw")) as test_client:
        health = test_client.get("/health").json()["index"]
        assert health["kind"] == "hnsw" and health["exact_fallback"]
        recall = health["recall_vs_exact"]["recall@10"]
        assert 0.9 <= recall <= 1.0  # a tiny catalog: the graph finds (nearly) what the scan finds
        graph = [ids(test_client.get("/search", params={"q": q, "k": K})) for q in queries]
        overlap = sum(len(set(a) & set(b)) for a, b in zip(graph, exact, strict=True)) / (K * len(queries))
        assert overlap >= 0.9
        deep = test_client.get("/search", params={"q": queries[0], "k": 150})  # k > efSearch (96): exact search
        assert ids(deep)[:K] == exact[0]
        searches = test_client.get("/health").json()["index"]["searches"]
        assert searches == {"ann": len(queries), "exact": 1}
    recorded = json.loads((run.serving_dir / "hnsw" / "recall.json").read_text())
    assert recorded[f"static ({latest_phase(run, 'static')})"] == recall


def test_batching_is_off_for_a_static_student_and_on_for_the_teacher(run: RunDir, queries: list[str]) -> None:
    with TestClient(app_from_run(run.root)) as test_client:
        batcher = test_client.get("/health").json()["batcher"]
        assert batcher["enabled"] is False and batcher["inline"] is True  # on the event loop, no thread hop
        inline = ids(test_client.get("/search", params={"q": queries[0], "k": K}))
    settings = ServiceSettings(batching=False, inline_search=False)
    with TestClient(app_from_run(run.root, settings=settings)) as test_client:
        assert ids(test_client.get("/search", params={"q": queries[0], "k": K})) == inline
    with TestClient(app_from_run(run.root, encoder="teacher")) as test_client:
        batcher = test_client.get("/health").json()["batcher"]
        assert batcher["enabled"] is True and batcher["inline"] is False


def test_serving_threads_leave_the_event_loop_a_core() -> None:
    assert [serving_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 15]
    assert serving_threads() >= 1


def test_the_service_pins_numpys_blas_threads_too() -> None:
    """A static student's projection runs in numpy: its BLAS must not take every core beside the workers."""
    from threadpoolctl import ThreadpoolController

    from harnesslm.pipeline.serve import pin_threads

    controller = ThreadpoolController()
    if not controller.select(user_api="blas").lib_controllers:
        pytest.skip("numpy is linked to no BLAS that threadpoolctl can see")
    import faiss
    import torch

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    try:
        with controller.limit(limits=2, user_api="blas"):  # restores the test process's own limits on exit
            pin_threads(1)
            assert {lib["num_threads"] for lib in controller.select(user_api="blas").info()} == {1}
    finally:  # pin_threads also pinned torch and FAISS: later tests keep the process's own threads
        torch.set_num_threads(torch_threads)
        faiss.omp_set_num_threads(faiss_threads)


def test_workers_rebuild_the_app_from_the_cli_options(
    run: RunDir, monkeypatch: pytest.MonkeyPatch, queries: list[str]
) -> None:
    import uvicorn

    from harnesslm.serving import workers

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    monkeypatch.setattr(workers, "serve_workers", lambda app, **kwargs: served.update(app=app, **kwargs) or 0)
    monkeypatch.setenv(ServeOptions.ENV, "")  # restored (unset) after the test; the CLI sets it for the workers
    args = ["serve", str(run.root), "--workers", "2", "--mode", "hybrid", "--max-k", "12"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert served["app"] == "harnesslm.pipeline.serve:app_from_env" and served["workers"] == 2
    with TestClient(app_from_env()) as test_client:  # what each worker process does
        health = test_client.get("/health").json()
        assert health["limits"]["max_k"] == 12 and health["limits"]["default_mode"] == "hybrid"
        assert test_client.get("/search", params={"q": queries[0]}).json()["mode"] == "hybrid"
    bad = CliRunner().invoke(cli, ["serve", str(run.root), "--mode", "fuzzy"])
    assert bad.exit_code == 2 and "mode" in bad.output
    small = CliRunner().invoke(cli, ["serve", str(run.root), "--max-k", "5"])
    assert small.exit_code == 0, small.output
    with TestClient(served["app"]) as test_client:  # a request without k gets at most max_k hits
        assert test_client.get("/health").json()["limits"]["default_k"] == 5

"""Hot swap: a new index or student served without a restart, atomically, and a mismatched pair refused."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from harnesslm.pipeline.index import update_index
from harnesslm.pipeline.serve import app_from_run, served_files_state
from harnesslm.run.run_dir import RunDir
from harnesslm.students.meta import STUDENT_META

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def copy(run: RunDir, tmp_path: Path) -> RunDir:
    """A run of its own: the tests change its catalog and students."""
    shutil.copytree(run.root, tmp_path / "run")
    return RunDir(tmp_path / "run")


def change_catalog(run: RunDir, folder: Path) -> tuple[str, str]:
    """Retitle one item to a word no other title has, delete another; returns (retitled, deleted)."""
    cfg = run.config.data.catalog
    retitled, deleted = run.catalog["item_id"].iloc[0], run.catalog["item_id"].iloc[1]
    row = run.catalog.iloc[[0]].rename(columns={"item_id": cfg.id_column, "text": cfg.text_column})
    row[cfg.text_column] = "zebra hammer deluxe"
    row.to_csv(folder / "delta.csv", index=False)
    (folder / "gone.txt").write_text(f"{deleted}\n", encoding="utf-8")
    update_index(RunDir(run.root), folder / "delta.csv", folder / "gone.txt", progress=False)
    return retitled, deleted


def zebra_hits(client: TestClient) -> list[str]:
    response = client.get("/search", params={"q": "zebra", "mode": "lexical", "k": 3})
    assert response.status_code == 200, response.text
    return [hit["item_id"] for hit in response.json()["hits"]]


def test_the_admin_endpoint_swaps_to_the_updated_index_under_load(copy: RunDir, tmp_path: Path) -> None:
    queries = list(dict.fromkeys(copy.split("test")["query"]))[:8]
    app = app_from_run(copy.root, admin_token=TOKEN, watch_seconds=0)
    with TestClient(app) as client:
        size = client.get("/health").json()["index"]["size"]
        assert zebra_hits(client) == []
        retitled, deleted = change_catalog(copy, tmp_path)
        stop = time.monotonic() + 60

        def load(worker: int) -> tuple[int, set[int], set[str]]:
            done, statuses, seen = 0, set(), set()
            while done < 40 and time.monotonic() < stop:
                response = client.get("/search", params={"q": queries[(worker + done) % len(queries)], "k": 10})
                statuses.add(response.status_code)
                seen |= {hit["item_id"] for hit in response.json().get("hits", [])}
                done += 1
            return done, statuses, seen

        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(load, worker) for worker in range(4)]
            swapped = client.post("/admin/reload", headers=AUTH)
            results = [future.result() for future in running]
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["swapped"] and swapped.json()["items"] == size - 1
        assert all(statuses == {200} for _, statuses, _ in results), "no request failed during the swap"
        health = client.get("/health").json()
        assert health["index"]["size"] == size - 1 and health["swaps"]["swaps"] == 1
        assert zebra_hits(client) == [retitled], "BM25 and the item table follow the new catalog"
        after = client.get("/search", params={"q": queries[0], "k": 100}).json()["hits"]
        assert deleted not in {hit["item_id"] for hit in after}


def test_a_change_of_the_run_files_is_served_without_a_request(copy: RunDir, tmp_path: Path) -> None:
    before = served_files_state(copy.root)
    with TestClient(app_from_run(copy.root, watch_seconds=0.05)) as client:
        retitled, _ = change_catalog(copy, tmp_path)
        assert served_files_state(copy.root) != before
        deadline = time.monotonic() + 60
        while client.get("/health").json()["swaps"]["swaps"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json()["swaps"]["last"]["reason"] == "files changed"
        assert zebra_hits(client) == [retitled]


def test_a_student_for_another_index_is_refused_and_the_old_pair_keeps_serving(copy: RunDir) -> None:
    query = copy.split("test")["query"].iloc[0]
    with TestClient(app_from_run(copy.root, admin_token=TOKEN, watch_seconds=0)) as client:
        first = client.get("/search", params={"q": query}).json()["hits"]
        meta_path = next((copy.root / "students" / "static").glob(f"*/{STUDENT_META}"))
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({**meta, "teacher_space": "0123456789abcdef"}))
        refused = client.post("/admin/reload", headers=AUTH)
        assert refused.status_code == 409 and "IndexMismatchError" in refused.json()["detail"]
        assert client.get("/search", params={"q": query}).json()["hits"] == first
        swaps = client.get("/health").json()["swaps"]
        assert swaps["swaps"] == 0 and swaps["refused"] == 1


def test_the_admin_endpoint_needs_its_token(copy: RunDir) -> None:
    with TestClient(app_from_run(copy.root, admin_token=TOKEN, watch_seconds=0)) as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    with TestClient(app_from_run(copy.root, admin_token=None, watch_seconds=0)) as client:
        assert client.post("/admin/reload", headers=AUTH).status_code == 403


class SlowEncoder:
    """Encodes in 50 ms, so requests queue behind each other."""

    def encode(self, queries: list[str], batch_size: int = 32):
        time.sleep(0.05)
        return np.ones((len(queries), 4), dtype=np.float32) / 2


def test_a_swapped_out_batcher_answers_what_it_queued_then_answers_alone() -> None:
    from harnesslm.index.item_index import ItemIndex
    from harnesslm.serving.batcher import MicroBatcher
    from harnesslm.serving.searcher import Searcher

    index = ItemIndex.build(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], "s")
    batcher = MicroBatcher(Searcher(SlowEncoder(), index), window_ms=1, max_batch=2)

    async def scenario() -> tuple[list, list]:
        queued = [asyncio.ensure_future(batcher.search([f"q{i}"], 2)) for i in range(6)]
        await asyncio.sleep(0.01)
        await batcher.aclose(drain_seconds=5)  # what a swap does to the old pair's batcher
        answered = await asyncio.gather(*queued)
        late = await batcher.search(["late"], 2)  # a request that read the old pair just before the swap
        return answered, late[0]

    answered, late = asyncio.run(scenario())
    assert len(answered) == 6 and all(len(ids[0]) == 2 for ids, _ in answered)
    assert len(late[0]) == 2 and batcher._worker is None, "no worker started again for a late request"


def test_sighup_swaps_the_pair(copy: RunDir) -> None:
    import os
    import signal

    swapper = app_from_run(copy.root, watch_seconds=0).state.hot_swap

    async def scenario() -> None:
        swapper.start()  # on the main thread's loop, as under uvicorn: the SIGHUP handler is installed
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 60
        while not swapper.swaps and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await swapper.stop()

    asyncio.run(scenario())
    assert swapper.swaps == 1 and swapper.last["reason"] == "SIGHUP"
    assert signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None), "the handler is removed on stop"

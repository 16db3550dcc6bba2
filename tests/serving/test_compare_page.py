"""The /compare page: every system's top 10 side by side, self-contained, and rendered by a real browser."""

from __future__ import annotations

import html
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from harnesslm.pipeline.serve import app_from_run
from harnesslm.run.run_dir import RunDir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def app(run: RunDir):
    return app_from_run(run.root, compare_teacher=True)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as test_client:
        yield test_client


def test_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    response = client.get("/compare")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "compare/search" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no remote asset
    assert "<script src" not in page and "<link" not in page


def test_compare_search_shows_each_system_with_overlap_and_time(
    client: TestClient, run: RunDir, queries: list[str]
) -> None:
    body = client.get("/compare/search", params={"q": queries[0]}).json()
    names = [system["name"] for system in body["systems"]]
    assert names == ["student", "hybrid", "bm25", "teacher"]
    tops = {s["name"]: [h["item_id"] for h in s["hits"]] for s in body["systems"]}
    assert all(s["took_ms"] > 0 for s in body["systems"])
    dense = client.get("/search", params={"q": queries[0], "k": 10}).json()["hits"]
    hybrid = client.get("/search", params={"q": queries[0], "k": 10, "mode": "hybrid"}).json()["hits"]
    assert tops["student"] == [h["item_id"] for h in dense]
    assert tops["hybrid"] == [h["item_id"] for h in hybrid]
    with TestClient(app_from_run(run.root, encoder="teacher", lexical=False)) as teacher:
        want = teacher.get("/search", params={"q": queries[0], "k": 10}).json()["hits"]
    assert tops["teacher"] == [h["item_id"] for h in want]
    assert body["overlap"]["student|teacher"] == len(set(tops["student"]) & set(tops["teacher"]))
    assert len(body["overlap"]) == 6  # every pair of the four systems
    assert client.get("/compare/search", params={"q": "   "}).status_code == 422


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_url(app):
    """The app behind a real uvicorn server on a free loopback port, in a thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_a_real_browser_renders_the_four_columns(live_url: str, client: TestClient, queries: list[str]) -> None:
    url = f"{live_url}/compare?q={queries[0].replace(' ', '+')}"
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in ("student", "hybrid", "bm25", "teacher"):
        assert f'data-system="{name}"' in dom.stdout
    expected = client.get("/compare/search", params={"q": queries[0]}).json()
    for system in expected["systems"]:
        assert html.escape(system["hits"][0]["title"], quote=False) in dom.stdout  # the script filled the lists
    assert "overlap of the top 10" in dom.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_screenshot_of_the_page_is_not_blank(
    live_url: str, client: TestClient, queries: list[str], tmp_path: Path
) -> None:
    from PIL import Image

    shot = tmp_path / "compare.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1280,900", f"{live_url}/compare?q={queries[1]}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 900)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text in four columns, green marks: not an empty or error page
    green = sum(count for count, rgb in colours if rgb == (0xE5, 0xF3, 0xE8))
    overlap = client.get("/compare/search", params={"q": queries[1]}).json()["overlap"]
    shared = any(n > 0 for pair, n in overlap.items() if "teacher" in pair)
    assert (green > 0) == shared  # hits also in the teacher's top 10 are marked, and only those

"""Screenshots of the /compare page for a query and of the HTML report, taken with headless Chromium.

Starts the run's service in-process (student, hybrid, BM25 and teacher columns), opens
``/compare?q=QUERY`` in Chromium, saves a PNG, prints what each column shows (top 3 titles, overlaps and
times, from ``/compare/search``) and saves that as JSON; then writes ``harness report --html`` and
screenshots it. Needs Chromium (``apt-get install chromium``).

    python benchmarks/screenshots.py runs/hd-serve --query "cordless drill" [--load-test FILE] \\
        [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import uvicorn

from harnesslm.pipeline.serve import app_from_run
from harnesslm.report.html import write_html_report
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]


def chromium_shot(url: str, out: Path, width: int = 1400, height: int = 1000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"]
    subprocess.run(
        [browser, *flags, f"--window-size={width},{height}", f"--screenshot={out}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--query", required=True, help="the query shown on the comparison page")
    parser.add_argument("--load-test", type=Path, default=None, help="load-test JSON for the HTML report")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app_from_run(args.run_dir, compare_teacher=True), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        shown = httpx.get(f"{base}/compare/search", params={"q": args.query}, timeout=60).json()
        page = args.out_dir / "compare_page.png"
        chromium_shot(f"{base}/compare?q={urllib.parse.quote_plus(args.query)}", page)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    summary = {
        "query": args.query,
        "overlap": shown["overlap"],
        "systems": {
            s["label"]: {"took_ms": s["took_ms"], "top3": [h["title"] for h in s["hits"][:3]]} for s in shown["systems"]
        },
    }
    record.save(args.out_dir / "compare_page.json", summary)
    report = write_html_report(RunDir(args.run_dir), args.load_test)
    chromium_shot(report.resolve().as_uri(), args.out_dir / "html_report.png", height=2600)
    print(json.dumps(summary, indent=2))
    print(f"screenshots: {page}, {args.out_dir / 'html_report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

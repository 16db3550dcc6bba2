"""Load test of the HTTP search service (`harness serve`): throughput and latency under concurrent clients.

For each encoder (teacher, PyTorch student, ONNX float32 and int8 exports) it starts the service for a run
directory in a subprocess on a free loopback port, waits for ``/health``, then drives ``GET /search`` with
an async client at each concurrency level for a fixed time, cycling through the run's held-out test queries.
Per level it records throughput (successful requests/s), p50/p99 latency, errors and the server's mean
micro-batch size; it prints a table and writes JSON (atomically, after every encoder).

The server runs with its own defaults (threads: the cores less one; micro-batching by encoder; an HNSW graph
with exact fallback for a large catalog) unless ``--threads``, ``--batching/--no-batching`` or ``--index`` say
otherwise; ``--mode hybrid`` loads the service with hybrid searches. The client runs on the same machine and
takes CPU too, so compare encoders with each other rather than with other machines. ``--client wrk`` (the
default when the ``wrk`` binary is installed: ``apt-get install wrk``) drives the load from wrk, a C load
generator whose per-request CPU is a small fraction of any Python client's, so the figures measure the
server rather than the client it shares the cores with; ``--client aiohttp`` is the Python client.

    python benchmarks/load_test.py runs/homedepot [--encoders teacher,numpy,onnx-int8] [--mode dense] \\
        [--client auto|wrk|aiohttp] [--concurrency 1,4,16,64] [--duration 20] [--workers 1] [--pin-cpus] \\
        [--out benchmarks/results/load_test.json]

The ONNX encoders need ``harness export RUN_DIR`` first; an encoder whose server does not start is recorded
as failed (with the server's message) and the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = ("teacher", "pytorch", "numpy", "onnx", "onnx-int8")
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="run directory with an index and trained students")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated: " + ", ".join(ENCODERS))
    parser.add_argument("--student", default=None, help="student to serve (default: the run's first student)")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated concurrent client counts")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per concurrency level")
    parser.add_argument(
        "--repeats", type=int, default=1, help="run every concurrency level this many times (the spread of p99)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests after each server starts")
    parser.add_argument("--k", type=int, default=10, help="hits per query")
    parser.add_argument(
        "--threads", type=int, default=None, help="server intra-op threads (default: the server's own choice)"
    )
    parser.add_argument("--index", default=None, help="server index: auto, exact or hnsw (default: the server's)")
    parser.add_argument("--mode", default="dense", choices=("dense", "lexical", "hybrid"), help="search mode sent")
    parser.add_argument("--workers", type=int, default=1, help="server processes (harness serve --workers)")
    parser.add_argument("--pin-cpus", action="store_true", help="one core per server worker (harness serve --pin-cpus)")
    parser.add_argument(
        "--client",
        default="auto",
        choices=("auto", "wrk", "aiohttp"),
        help="load generator: wrk (C) or aiohttp (Python); auto: wrk when installed",
    )
    parser.add_argument("--batch-window-ms", type=float, default=2.0, help="server micro-batching window")
    parser.add_argument("--max-batch", type=int, default=64, help="server's most queries per encoder call")
    parser.add_argument(
        "--batching",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="server micro-batching on/off (default: the server's choice by encoder)",
    )
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for /health")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_test.json", help="JSON results file"
    )
    args = parser.parse_args(argv)
    args.encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    unknown = [e for e in args.encoders if e not in ENCODERS]
    if unknown:
        parser.error(f"unknown encoder {unknown[0]!r}; choose from {', '.join(ENCODERS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "aiohttp"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk needs the wrk binary on PATH (apt-get install wrk)")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs positive integers, e.g. 1,4,16,64")
    if args.duration <= 0 or (args.threads is not None and args.threads < 1):
        parser.error("--duration must be > 0 and --threads >= 1")
    return args


# the server ------------------------------------------------------------------------------------------------
def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, encoder: str, port: int, log: Path) -> subprocess.Popen:
    """``harness serve`` in a subprocess, threads pinned, output to ``log``."""
    command = [
        sys.executable,
        "-m",
        "harnesslm.cli.app",
        "serve",
        str(args.run_dir),
        "--encoder",
        encoder,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-k",
        str(max(args.k, 100)),
        "--batch-window-ms",
        str(args.batch_window_ms),
        "--max-batch",
        str(args.max_batch),
    ]
    if args.batching is not None:
        command.append("--batching" if args.batching else "--no-batching")
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.index is not None:
        command += ["--index", args.index]
    if args.mode != "dense":
        command += ["--mode", args.mode]
    if args.workers != 1:
        command += ["--workers", str(args.workers)]
    if args.pin_cpus:
        command.append("--pin-cpus")
    if args.student and encoder != "teacher":
        command += ["--student", args.student]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    if args.threads is not None:
        threads = str(args.threads)
        env |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def wait_healthy(process: subprocess.Popen, url: str, timeout: float, log: Path) -> dict:
    """Poll ``/health`` until it answers; raise with the server's last output if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}: {_tail(log)}")
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server did not answer /health within {timeout:.0f} s: {_tail(log)}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path, lines: int = 8) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:]) or "(no output)"


# the load ----------------------------------------------------------------------------------------------
async def drive(
    url: str, queries: Iterator[str], concurrency: int, duration: float, k: int, mode: str = "dense"
) -> dict:
    """``concurrency`` clients each sending one request at a time for ``duration`` seconds (aiohttp, keep-alive).

    The client shares the cores with the server, so it must cost little per request: aiohttp (C-accelerated
    HTTP parsing, under uvloop when installed) takes a fraction of the CPU httpx does, which otherwise becomes
    the bottleneck of a 2-core machine well before the server does.
    """
    import aiohttp

    params = {"k": str(k)} if mode == "dense" else {"k": str(k), "mode": mode}
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60.0)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def user() -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    async with client.get("/search", params={"q": next(queries), **params}) as response:
                        body = await response.read()
                        if response.status == 200:
                            latencies.append(time.perf_counter() - sent)
                            timing = parse_server_timing(response.headers.get("server-timing", ""))
                            for name, value in timing.items():
                                stages.setdefault(name, []).append(value)
                        else:
                            errors.append(f"HTTP {response.status}: {body[:200]!r}")
                except (aiohttp.ClientError, TimeoutError) as error:
                    errors.append(f"{type(error).__name__}: {error}")

        await asyncio.gather(*(user() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(seconds, 3),
        "rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "mean_ms": float(ms.mean()) if len(ms) else None,
        # the server's own breakdown (its Server-Timing header): mean and p99 ms per stage
        "server_ms": {
            name: {"mean": float(np.mean(values)), "p99": float(np.percentile(values, 99))}
            for name, values in stages.items()
        },
    }


# wrk: per request it records the latency (its own histogram, microseconds) and the Server-Timing header (a
# histogram at 10 us resolution below 10 ms); at the end it writes the summary and the histograms for Python.
# One wrk thread holds all connections (epoll), so the client takes at most one core; each connection sends its
# next request when the last one is answered (closed loop, as the aiohttp clients).
WRK_SCRIPT = """
local paths = {%(paths)s}
local out = "%(out)s"
local i = 0
-- globals, so that done() can read each thread's copy through thread:get
stages = {}
bad, first_bad = 0, nil

request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end

response = function(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if first_bad == nil then first_bad = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 200) end
    return
  end
  local timing = headers["server-timing"] or headers["Server-Timing"] or ""
  for name, value in string.gmatch(timing, "([%%w_]+);dur=([%%d%%.]+)") do
    -- a flat histogram (stage and rounded ms -> count): wrk crashes copying large nested tables
    local ms = tonumber(value)
    local key = name .. " " .. string.format(ms < 10 and "%%.2f" or "%%.1f", ms)
    stages[key] = (stages[key] or 0) + 1
  end
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

done = function(summary, latency, requests)
  local f = io.open(out, "w")
  local e = summary.errors
  f:write(string.format("summary %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout))
  f:write(string.format("latency %%f %%f %%f\\n", latency:percentile(50), latency:percentile(99), latency.mean))
  for _, thread in ipairs(threads) do
    f:write(string.format("bad %%d\\n", thread:get("bad")))
    local first = thread:get("first_bad")
    if first ~= nil then f:write("first " .. string.gsub(first, "\\n", " ") .. "\\n") end
    for key, count in pairs(thread:get("stages")) do
      f:write("stage " .. key .. " " .. count .. "\\n")
    end
  end
  f:close()
end
"""


def drive_wrk(url: str, queries: list[str], concurrency: int, duration: float, k: int, mode: str = "dense") -> dict:
    """The same load as :func:`drive`, from wrk: ``concurrency`` keep-alive connections for ``duration`` s."""
    extra = {"k": str(k)} if mode == "dense" else {"k": str(k), "mode": mode}
    paths = ", ".join(json.dumps("/search?" + urlencode({"q": q, **extra})) for q in queries)
    with tempfile.TemporaryDirectory(prefix="harness-wrk-") as tmp:
        script, out = Path(tmp) / "load.lua", Path(tmp) / "out.txt"
        script.write_text(WRK_SCRIPT % {"paths": paths, "out": out}, encoding="utf-8")
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "60s", "-s", str(script), url]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip() or finished.stdout}")
        lines = out.read_text(encoding="utf-8").splitlines()
    values: dict[str, list[float]] = {}
    bad, first = 0, None
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "summary":
            requests, micros, *socket_errors = (int(v) for v in rest.split())
        elif kind == "latency":
            p50, p99, mean = (float(v) / 1000 for v in rest.split())
        elif kind == "bad":
            bad += int(rest)
        elif kind == "first" and first is None:
            first = rest
        elif kind == "stage":
            name, value, count = rest.split()
            values.setdefault(name, []).append((float(value), int(count)))
    # wrk counts non-2xx answers in its "status" error and still counts them as requests
    errors = bad + sum(socket_errors[:3]) + socket_errors[4]
    ok = requests - bad
    seconds = micros / 1e6
    return {
        "concurrency": concurrency,
        "requests": ok,
        "errors": errors,
        "first_error": first or (f"socket errors {socket_errors}" if errors else None),
        "seconds": round(seconds, 3),
        "rps": ok / seconds,
        "p50_ms": p50,
        "p99_ms": p99,
        "mean_ms": mean,
        "server_ms": {name: _histogram_stats(bins) for name, bins in values.items()},
    }


def _histogram_stats(bins: list[tuple[float, int]]) -> dict[str, float]:
    """Mean and p99 of a histogram given as (value, count) pairs."""
    bins.sort()
    value, count = np.array([b[0] for b in bins]), np.array([b[1] for b in bins])
    cumulative = np.cumsum(count)
    p99 = value[np.searchsorted(cumulative, 0.99 * cumulative[-1])]
    return {"mean": float((value * count).sum() / cumulative[-1]), "p99": float(p99)}


def run_async(coroutine):
    """``asyncio.run`` on uvloop when it is installed (the client's own event loop costs less CPU)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def parse_server_timing(header: str) -> dict[str, float]:
    """``"encode;dur=0.1, search;dur=7.8"`` -> ``{"encode": 0.1, "search": 7.8}`` (entries without dur skipped)."""
    stages = {}
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if name and key == "dur":
                stages[name] = float(value)
    return stages


def batcher_stats(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10.0).json()["batcher"]


def bench_encoder(args: argparse.Namespace, encoder: str, queries: list[str]) -> dict:
    """Start the server for ``encoder``, warm it up, run every concurrency level, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="harness-load-") as tmp:
        log = Path(tmp) / "server.log"
        started = time.perf_counter()
        process = start_server(args, encoder, port, log)
        try:
            try:
                health = wait_healthy(process, url, args.startup_timeout, log)
            except RuntimeError as error:
                return {"status": "failed", "error": str(error)}
            startup = time.perf_counter() - started
            cycle = itertools.cycle(queries)
            for _ in range(args.warmup):
                httpx.get(f"{url}/search", params={"q": next(cycle), "k": args.k}, timeout=60.0)
            levels = []
            for repeat, concurrency in itertools.product(range(args.repeats), args.concurrency):
                before = batcher_stats(url)
                if args.client == "wrk":
                    level = drive_wrk(url, queries, concurrency, args.duration, args.k, args.mode)
                else:
                    level = run_async(drive(url, cycle, concurrency, args.duration, args.k, args.mode))
                after = batcher_stats(url)
                calls = after["encoder_calls"] - before["encoder_calls"]
                level["mean_batch"] = (after["queries"] - before["queries"]) / calls if calls else None
                level["repeat"] = repeat
                levels.append(level)
                console.print(
                    f"  {encoder} x{concurrency} #{repeat + 1}: {level['rps']:.1f} req/s, "
                    f"p50 {_ms(level['p50_ms'])} ms, "
                    f"p99 {_ms(level['p99_ms'])} ms, {level['errors']} errors"
                )
            return {
                "status": "ok",
                "startup_s": round(startup, 2),
                "model": health["model"],
                "index": health.get("index"),
                "batching": health.get("batcher", {}).get("enabled"),
                "levels": levels,
                "spread": spread(levels),
            }
        finally:
            stop_server(process)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def show(results: dict) -> None:
    table = Table(title=f"search service load test ({results['settings']['duration_s']:g} s per level)")
    for column in ("encoder", "clients", "req/s", "p50 ms", "p99 ms", "errors", "mean batch"):
        table.add_column(column, justify="left" if column == "encoder" else "right")
    for encoder, outcome in results["encoders"].items():
        if outcome["status"] != "ok":
            table.add_row(encoder, "-", "failed", "", "", "", "", style="red")
            continue
        for level in outcome["levels"]:
            batch = level["mean_batch"]
            table.add_row(
                encoder,
                str(level["concurrency"]),
                f"{level['rps']:.1f}",
                _ms(level["p50_ms"]),
                _ms(level["p99_ms"]),
                str(level["errors"]),
                "-" if batch is None else f"{batch:.1f}",
            )
    console.print(table)
    if results["settings"].get("repeats", 1) > 1:
        show_spread(results)
    show_breakdown(results)
    for encoder, outcome in results["encoders"].items():
        if outcome["status"] != "ok":
            console.print(f"[red]{encoder}:[/red] {outcome['error']}", soft_wrap=True, highlight=False)


def spread(levels: list[dict]) -> dict[int, dict[str, float]]:
    """Per client count: the min, median and max p99 and throughput over the repeats."""
    by_clients: dict[int, list[dict]] = {}
    for level in levels:
        by_clients.setdefault(level["concurrency"], []).append(level)
    return {
        clients: {
            "runs": len(runs),
            **{f"p99_ms_{name}": fn([r["p99_ms"] for r in runs]) for name, fn in _SUMMARIES},
            **{f"rps_{name}": fn([r["rps"] for r in runs]) for name, fn in _SUMMARIES},
        }
        for clients, runs in by_clients.items()
    }


_SUMMARIES = (("min", min), ("median", statistics.median), ("max", max))


def show_spread(results: dict) -> None:
    table = Table(title="spread over repeats: p99 ms and req/s (min / median / max)")
    for column in ("encoder", "clients", "runs", "p99 ms", "req/s"):
        table.add_column(column, justify="left" if column == "encoder" else "right")
    for encoder, outcome in results["encoders"].items():
        for clients, row in outcome.get("spread", {}).items():
            table.add_row(
                encoder,
                str(clients),
                str(row["runs"]),
                " / ".join(f"{row[f'p99_ms_{n}']:.1f}" for n, _ in _SUMMARIES),
                " / ".join(f"{row[f'rps_{n}']:.0f}" for n, _ in _SUMMARIES),
            )
    console.print(table)


def show_breakdown(results: dict) -> None:
    """Server-side mean ms per stage at each level; "client" is what the client saw (the gap: serialisation,
    HTTP and the client's own share of the CPU)."""
    stages = ("parse", "queue", "encode", "search", "lexical", "fuse", "lookup", "serialize", "total")
    levels = [level for outcome in results["encoders"].values() for level in outcome.get("levels", [])]
    seen = {name for level in levels for name in level.get("server_ms", {})}
    stages = tuple(name for name in stages if name in seen) or stages[:3]
    table = Table(title="server-side time per request, mean ms (Server-Timing)")
    for column in ("encoder", "clients", *stages, "client"):
        table.add_column(column, justify="left" if column == "encoder" else "right")
    for encoder, outcome in results["encoders"].items():
        for level in outcome.get("levels", []):
            server = level.get("server_ms", {})
            cells = [f"{server[name]['mean']:.2f}" if name in server else "-" for name in stages]
            table.add_row(encoder, str(level["concurrency"]), *cells, _ms(level["mean_ms"]))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    run = RunDir(args.run_dir)
    queries = list(dict.fromkeys(run.split("test")["query"])) or run.query_pool()
    if not queries:
        console.print("[red]no test queries in the run[/red]")
        return 2
    results: dict = {
        "run_dir": str(args.run_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "duration_s": args.duration,
            "repeats": args.repeats,
            "concurrency": args.concurrency,
            "k": args.k,
            "threads": args.threads,
            "batching": args.batching,
            "index": args.index,
            "mode": args.mode,
            "workers": args.workers,
            "pin_cpus": args.pin_cpus,
            "batch_window_ms": args.batch_window_ms,
            "max_batch": args.max_batch,
            "queries": len(queries),
            "endpoint": "GET /search",
            "client": {
                "wrk": "wrk (C), one thread, one keep-alive connection per client, same machine",
                "aiohttp": "aiohttp keep-alive, one connection per client, same machine",
            }[args.client],
        },
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "encoders": {},
    }
    for encoder in args.encoders:
        console.rule(f"[bold]{encoder}")
        results["encoders"][encoder] = bench_encoder(args, encoder, queries)
        record.save(args.out, results)
    show(results)
    console.print(f"results: {args.out}")
    return 0 if all(o["status"] == "ok" for o in results["encoders"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

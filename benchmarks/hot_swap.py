"""Benchmark: a catalog update served without a restart, under load. Errors and latency before, during and
after the swap.

A copy of the run is served by ``harness serve`` (its defaults; admin token set). The catalog is updated on
disk first with ``harness index COPY --update`` (``--changes`` titles retitled and ``--deletions`` items taken
off sale), which the service does not see yet (``--watch-seconds 0``). Then ``--clients`` closed-loop clients
send ``GET /search`` with the run's validation queries; after ``--before`` seconds ``POST /admin/reload``
swaps the service to the updated index (for a large exact-built run, the update applied the change to the
service's HNSW graph in place, so the swap loads it; a graph from another version of the index would be built
again while the old pair answers), and the load goes on for ``--after`` seconds after the swap. Every
request's send time, latency and status are kept; the figures are p50/p99 and errors in each window, the
swap's own time, and a check that after the swap no deleted item is returned. Run it alone on the machine.

    python benchmarks/hot_swap.py runs/recipe-time/after-homedepot-minilm-empty [--clients 16] [--changes 200] \\
        [--deletions 200] [--before 10] [--after 15] [--out benchmarks/results/hot_swap.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console

from harnesslm.run.run_dir import RunDir
from load_test import free_port, stop_server, wait_healthy
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
console = Console()


def make_update(run: RunDir, folder: Path, changes: int, deletions: int) -> tuple[Path, Path, list[str]]:
    """A delta retitling the first ``changes`` items and a list deleting the last ``deletions``."""
    cfg = run.config.data.catalog
    catalog = run.catalog
    delta = catalog.head(changes).rename(columns={"item_id": cfg.id_column, "text": cfg.text_column})
    delta[cfg.text_column] = delta[cfg.text_column] + " (new model)"
    delta.to_csv(folder / "delta.csv", index=False)
    gone = catalog["item_id"].tail(deletions).tolist()
    (folder / "gone.txt").write_text("\n".join(gone) + "\n", encoding="utf-8")
    return folder / "delta.csv", folder / "gone.txt", gone


async def load_with_swap(url: str, queries: list[str], clients: int, before: float, after: float) -> dict:
    import aiohttp

    records: list[tuple[float, float, int, list[str]]] = []
    swap: dict = {}
    stop = asyncio.Event()
    async with aiohttp.ClientSession(base_url=url, connector=aiohttp.TCPConnector(limit=clients)) as session:
        start = time.perf_counter()

        async def user(offset: int) -> None:
            i = offset
            while not stop.is_set():
                sent = time.perf_counter()
                try:
                    async with session.get("/search", params={"q": queries[i % len(queries)], "k": "10"}) as reply:
                        body = await reply.json() if reply.status == 200 else {}
                        ids = [hit["item_id"] for hit in body.get("hits", [])]
                        records.append((sent - start, time.perf_counter() - sent, reply.status, ids))
                except (aiohttp.ClientError, TimeoutError):
                    records.append((sent - start, time.perf_counter() - sent, 0, []))
                i += clients

        async def swapper() -> None:
            await asyncio.sleep(before)
            swap["sent"] = time.perf_counter() - start
            # a connection of its own (the clients hold all of theirs) and no timeout: a swap may take minutes
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=None)) as admin,
                admin.post("/admin/reload", headers=headers) as reply,
            ):
                swap["status"] = reply.status
                swap["body"] = await reply.json()
            swap["answered"] = time.perf_counter() - start
            await asyncio.sleep(after)
            stop.set()

        await asyncio.gather(swapper(), *(user(i) for i in range(clients)))
    return {"records": records, "swap": swap}


def window(records: list, begin: float, end: float) -> dict:
    inside = [r for r in records if begin <= r[0] < end]
    ms = np.asarray([r[1] for r in inside if r[2] == 200]) * 1000
    return {
        "seconds": round(end - begin, 2),
        "requests": len(inside),
        "errors": sum(1 for r in inside if r[2] != 200),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "max_ms": round(float(ms.max()), 2) if len(ms) else None,
    }


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run with an index and a trained student")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--changes", type=int, default=200, help="items retitled by the update")
    parser.add_argument("--deletions", type=int, default=200, help="items deleted by the update")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of load before the swap")
    parser.add_argument("--after", type=float, default=15.0, help="seconds of load after the swap answered")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hot_swap.json")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="harness-hot-swap-"))
    copy = scratch / "run"
    shutil.copytree(args.run_dir, copy, ignore=shutil.ignore_patterns("baselines"))
    run = RunDir(copy)
    queries = list(dict.fromkeys(run.split("validation")["query"]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = scratch / "serve.log"
    command = [sys.executable, "-m", "harnesslm.cli.app", "serve", str(copy), "--port", str(port)]
    env = {**os.environ, "HARNESSLM_ADMIN_TOKEN": TOKEN, "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        server = subprocess.Popen([*command, "--watch-seconds", "0"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        health = wait_healthy(server, url, 900, log)
        console.print(f"serving {health['model']['name']} over {health['index']['size']:,} items ({health['index']})")
        delta, gone_file, gone = make_update(run, scratch, args.changes, args.deletions)
        began = time.perf_counter()
        update = [sys.executable, "-m", "harnesslm.cli.app", "index", str(copy), "--update", str(delta)]
        subprocess.run([*update, "--delete", str(gone_file)], check=True, env=env, capture_output=True)
        update_seconds = time.perf_counter() - began
        console.print(f"catalog updated on disk in {update_seconds:.1f} s; load and swap")
        result = asyncio.run(load_with_swap(url, queries, args.clients, args.before, args.after))
        after_health = httpx.get(f"{url}/health", timeout=10).json()
    finally:
        stop_server(server)
    records, swap = result["records"], result["swap"]
    end = max(r[0] for r in records)
    gone_set = set(gone)
    served_after = [r for r in records if r[0] >= swap["answered"]]
    figures = {
        "run": str(args.run_dir),
        "clients": args.clients,
        "update": {"changes": args.changes, "deletions": args.deletions, "seconds": round(update_seconds, 2)},
        "swap": {k: swap[k] for k in ("status", "body")} | {"seconds": round(swap["answered"] - swap["sent"], 2)},
        "before": window(records, 0, swap["sent"]),
        "during": window(records, swap["sent"], swap["answered"]),
        "after": window(records, swap["answered"], end + 1e-9),
        "deleted_items_returned_after_swap": sum(1 for r in served_after if gone_set.intersection(r[3])),
        "index_size_before_after": [health["index"]["size"], after_health["index"]["size"]],
        "server": {"model": health["model"], "index_kind": health["index"]["kind"]},
    }
    console.print(figures)
    record.save(args.out, figures)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

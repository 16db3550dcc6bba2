"""Benchmark: what Ray costs on one machine, against the local process pool, for the sharded catalog pass.

The same ``--sample`` catalog titles are encoded by the same model (default: the bundled MiniLM, PyTorch) in
shards of ``--shard-size``: in this process (1 worker), on the spawn process pool (``encoding.executor:
process``) and on Ray actors (``encoding.executor: ray``, a local head with ``--cpus`` CPUs started here, whose
start-up is timed apart), 2 workers each. Each pass starts from an empty shard folder. The embeddings of each
executor are compared with the single process's (max absolute difference). Run it alone on the machine.

    python benchmarks/ray_overhead.py [--data ../shared/data/homedepot/products.csv] [--sample 3000] \\
        [--shard-size 250] [--workers 2] [--out benchmarks/results/ray_overhead.json]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from harnesslm.encoding.sharded import encode_sharded
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def timed_pass(model: str, texts: list[str], executor: str, workers: int, shard_size: int) -> tuple[float, np.ndarray]:
    folder = Path(tempfile.mkdtemp(prefix="harness-ray-bench-"))
    try:
        start = time.perf_counter()
        embeddings = encode_sharded(
            model, texts, folder, shard_size=shard_size, workers=workers, executor=executor, progress=False
        )
        return time.perf_counter() - start, embeddings
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "homedepot" / "products.csv")
    parser.add_argument("--text-column", default="product_title")
    parser.add_argument("--model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray head")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_overhead.json")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"data not found: {args.data}")
        return 2
    import ray

    from harnesslm.models.bundled import resolve_model
    from harnesslm.models.model_loading import load_model

    titles = pd.read_csv(args.data, usecols=[args.text_column], encoding="latin-1")[args.text_column]
    texts = titles.astype(str).drop_duplicates().head(args.sample).tolist()
    model_dir = Path(tempfile.mkdtemp(prefix="harness-ray-model-"))
    load_model(resolve_model(args.model)).save(str(model_dir))  # every executor loads the same folder
    model = str(model_dir)
    rows = []
    reference = None
    for executor, workers in (("process", 1), ("process", args.workers), ("ray", args.workers)):
        startup = None
        if executor == "ray":
            begin = time.perf_counter()
            ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
            startup = time.perf_counter() - begin
        seconds, embeddings = timed_pass(model, texts, executor, workers, args.shard_size)
        if reference is None:
            reference = embeddings
        row = {
            "executor": executor if workers > 1 else "in-process",
            "workers": workers,
            "seconds": round(seconds, 2),
            "texts_per_s": round(len(texts) / seconds, 1),
            "cluster_start_s": None if startup is None else round(startup, 2),
            "max_abs_diff_to_in_process": float(np.abs(embeddings - reference).max()),
        }
        rows.append(row)
        console.print(row)
        if executor == "ray":
            ray.shutdown()
    shutil.rmtree(model_dir, ignore_errors=True)
    figures = {
        "model": args.model,
        "texts": len(texts),
        "shard_size": args.shard_size,
        "ray_version": ray.__version__,
        "rows": rows,
    }
    record.save(args.out, figures)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

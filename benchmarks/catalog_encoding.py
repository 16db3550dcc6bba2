"""Benchmark: how fast the teacher encodes the catalog in fp32, bf16 and ONNX, and what each costs in quality.

Catalog encoding dominates the recipe's wall time (the teacher passes over every item text), and this CPU has
AVX-512 BF16. For each setting this measures, on the run's fine-tuned teacher with its document prompt:

- throughput: item texts per second over ``--sample`` catalog titles (batch ``--batch-size``, ``--threads``);
- drift: mean and minimum cosine of each setting's item embeddings to the fp32 ones (same titles);
- quality: NDCG@10 and Recall@100 of the ``--split`` queries (default validation: the fastest setting within
  0.2 points is a choice, so it is made there, never on test; queries always encoded in fp32, so only the
  catalog side changes) over an index built from that setting's embeddings of a sub-catalog: every item judged
  for one of those queries plus ``--distractors`` random others (the whole catalog takes a pass per setting).

Settings: ``fp32`` (PyTorch), ``bf16`` (PyTorch under ``torch.autocast`` bfloat16), ``onnx`` (the float32
export the recipe encodes the catalog with by default, ``harnesslm.encoding.backend``) and ``onnx-int8`` (its
dynamically quantized copy), run by onnxruntime. ``--model NAME`` measures another embedder off the shelf
instead of the run's teacher (its own prompts); ``--no-quality`` skips the sub-catalog indexes (a large teacher
takes minutes per setting there) and keeps throughput and drift. sentence-transformers' own ONNX
and OpenVINO backends need ``optimum-onnx`` / ``optimum-intel``, which cannot be installed beside
transformers 5 here (pip reports a resolution conflict for optimum-onnx; optimum-intel resolves only to an old
release): they are tried and reported as unavailable when they fail. Prints a table and writes JSON.

    python benchmarks/catalog_encoding.py runs/hd-serve [--sample 2000] [--distractors 10000] \\
        [--settings fp32,bf16,onnx,onnx-int8] [--model bundled:all-mpnet-base-v2] [--no-quality] \\
        [--out benchmarks/results/catalog_encoding.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harnesslm.encoding.backend import Engine, encode_in_batches, onnx_encoder
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.item_index import ItemIndex
from harnesslm.models.prompts import prompt_of
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("fp32", "bf16", "onnx", "onnx-int8", "st-onnx", "st-openvino")
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="run directory with a fine-tuned teacher and a test split")
    parser.add_argument("--sample", type=int, default=2000, help="catalog titles timed per setting")
    parser.add_argument("--distractors", type=int, default=10_000, help="random items beside the judged ones")
    parser.add_argument("--split", default="validation", choices=("validation", "test"), help="judged queries")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settings", default="fp32,bf16,onnx,onnx-int8,st-onnx,st-openvino")
    parser.add_argument("--model", default=None, help="an embedder off the shelf instead of the run's teacher")
    parser.add_argument("--no-quality", action="store_true", help="throughput and drift only (no sub-catalog NDCG)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "catalog_encoding.json")
    args = parser.parse_args(argv)
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if unknown := [s for s in args.settings if s not in SETTINGS]:
        parser.error(f"unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    return args


def encoders(teacher, source: str, settings: list[str], batch_size: int, tmp: Path) -> dict[str, Callable | str]:
    """setting -> texts -> float32 normalised embeddings (or the reason it is unavailable); ``source`` is the
    teacher's folder (sentence-transformers' own backends load it again)."""
    prompt = prompt_of(teacher, "document")
    out: dict[str, Callable | str] = {}
    for setting in settings:
        try:
            if setting == "fp32":
                out[setting] = lambda t: encode(teacher, t, batch_size=batch_size, role="document")
            elif setting == "bf16":

                def bf16(texts: list[str]) -> np.ndarray:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return encode(teacher, texts, batch_size=batch_size, role="document")

                out[setting] = bf16
            elif setting == "onnx":  # the recipe's own default path
                found = onnx_encoder(teacher, tmp / "export")
                if isinstance(found, str):
                    raise RuntimeError(found)
                engine = Engine("onnx", found)
                out[setting] = lambda t, e=engine: encode_in_batches(e, t, batch_size, progress=False)
            elif setting == "onnx-int8":
                from harnesslm.onnx.exporter import export_onnx
                from harnesslm.onnx.runtime import OnnxQueryEncoder

                folder = tmp / "teacher-onnx"
                if not (folder / "harness_onnx.json").exists():
                    export_onnx(teacher, folder, meta={})
                onnx = OnnxQueryEncoder.load(folder, quantized=setting == "onnx-int8")
                out[setting] = lambda t, o=onnx: o.encode([prompt + x for x in t], batch_size=batch_size)
            else:
                from sentence_transformers import SentenceTransformer

                backend = setting.removeprefix("st-")
                model = SentenceTransformer(source, backend=backend)
                out[setting] = lambda t, m=model: encode(m, t, batch_size=batch_size, role="document")
        except Exception as error:  # an optional backend that cannot load here is reported, not fatal
            out[setting] = f"{type(error).__name__}: {str(error)[:200]}"
    return out


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    catalog = run.catalog
    rng = np.random.default_rng(0)
    sample = catalog["text"].iloc[rng.choice(len(catalog), size=min(args.sample, len(catalog)), replace=False)]
    sample = sample.tolist()
    judged_split = run.split(args.split)
    qrels = qrels_of(judged_split)
    judged = set(judged_split["item_id"])
    others = catalog[~catalog["item_id"].isin(judged)]
    picked = others.iloc[rng.choice(len(others), size=min(args.distractors, len(others)), replace=False)]
    sub = catalog[catalog["item_id"].isin(judged | set(picked["item_id"]))]
    queries = list(qrels)
    if args.model:
        from harnesslm.models.bundled import resolve_model
        from harnesslm.models.model_loading import load_model

        source = resolve_model(args.model, run.config.cache_dir)
        teacher = load_model(source, run.config.teacher.max_seq_length)
    else:
        source, teacher = str(run.teacher_dir), run.teacher
    query_emb = encode(teacher, queries, batch_size=256, role="query")
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    rows: dict[str, dict] = {}
    reference: np.ndarray | None = None
    with tempfile.TemporaryDirectory(prefix="harness-catalog-") as tmp:
        for setting, fn in encoders(teacher, str(source), args.settings, args.batch_size, Path(tmp)).items():
            if isinstance(fn, str):
                rows[setting] = {"status": "unavailable", "error": fn}
                console.print(f"[yellow]{setting}: unavailable ({fn})")
                continue
            fn(sample[:64])  # warm-up (graph optimisation, allocator)
            start = time.perf_counter()
            embeddings = fn(sample)
            seconds = time.perf_counter() - start
            if reference is None and setting == "fp32":
                reference = embeddings
            cosines = np.sum(embeddings * reference, axis=1) if reference is not None else None
            quality = {"ndcg@10": None, "recall@100": None}
            if not args.no_quality:
                index = ItemIndex.build(fn(sub["text"].tolist()), sub["item_id"].tolist(), space="x")
                ranked = index.search(query_emb, 100)[0]
                report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
                quality = {m: report.means[m] for m in quality}
            rows[setting] = {
                "status": "ok",
                "texts_per_s": len(sample) / seconds,
                "mean_cosine_to_fp32": float(cosines.mean()) if cosines is not None else None,
                "min_cosine_to_fp32": float(cosines.min()) if cosines is not None else None,
                **quality,
            }
            console.print(f"{setting}: {rows[setting]['texts_per_s']:.1f} texts/s, NDCG@10 {quality['ndcg@10']}")
    base = rows.get("fp32", {})
    ok = {s: r for s, r in rows.items() if r["status"] == "ok"}
    within = [
        s
        for s, r in ok.items()
        if base and r["ndcg@10"] is not None and abs(r["ndcg@10"] - base["ndcg@10"]) * 100 <= 0.2
    ]
    fastest = max(within, key=lambda s: ok[s]["texts_per_s"]) if within else None
    results = {
        "run_dir": str(args.run_dir),
        "teacher": args.model or run.config.teacher.model,
        "off_the_shelf": bool(args.model),
        "sample_titles": len(sample),
        "sub_catalog_items": len(sub),
        "split": args.split,
        "queries": len(queries),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "settings": rows,
        "fastest_within_0.2_ndcg_points": fastest,
    }
    record.save(args.out, results)
    which = f"{args.model} off the shelf" if args.model else f"{run.config.teacher.model} fine-tuned"
    table = Table(title=f"catalog encoding, {which} ({args.threads} threads)")
    for column in ("setting", "texts/s", "x fp32", "mean cos", "min cos", "NDCG@10", "R@100"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for setting, row in rows.items():
        if row["status"] != "ok":
            table.add_row(setting, "unavailable", "", "", "", "", "", style="yellow")
            continue
        speed = row["texts_per_s"] / base["texts_per_s"] if base else float("nan")
        table.add_row(
            setting,
            f"{row['texts_per_s']:.1f}",
            f"{speed:.2f}",
            f"{row['mean_cosine_to_fp32']:.5f}",
            f"{row['min_cosine_to_fp32']:.5f}",
            *(f"{row[m]:.4f}" if row[m] is not None else "not run" for m in ("ndcg@10", "recall@100")),
        )
    console.print(table)
    console.print(f"fastest within 0.2 NDCG@10 points of fp32: {fastest}; results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the teacher's two heavy steps on a GPU, catalog encoding and contrastive fine-tuning (issue 13).

On a 2-core CPU these dominate the recipe (EmbeddingGemma-300M: ~58 min per pass over the 54,667 Home Depot
titles, 29.9 s per fine-tuning step of 32 rows). This measures them on whatever GPU the machine has, through
the project's own code paths, on a prepared run's catalog and training queries:

- catalog encoding: :func:`harnesslm.encoding.backend.device_engine` (the path ``harness index`` takes on a
  GPU: the document prompt, batches of ``GPU_BATCH_SIZE``) in float32, float32 with TF32 matrix products,
  bfloat16 weights, and bfloat16 with PyTorch's cuDNN attention turned off (``bf16-no-cudnn``); texts/s over
  the whole catalog, the full pass's seconds, and the drift of each setting's embeddings from float32 (mean and
  minimum cosine);
- fine-tuning: :func:`harnesslm.training.teacher_finetune.fine_tune_teacher` (MultipleNegativesRankingLoss with the
  config's hard negatives, the query prompt on the anchor, bf16 mixed precision on a GPU) for ``--steps``
  steps at each ``--batch-sizes``; seconds per step after the first ``--warmup`` steps, rows/s and peak GPU
  memory. The negatives are random catalog items: the step's cost depends on the texts' lengths, not on which
  items they are.

``--random-weights`` says the run's teacher has random weights (``benchmarks/random_weights.py`` makes such a
copy of a model: the same architecture, tokenizer, prompts and sequence lengths, so the same compute), for
when the weights cannot reach the GPU machine (a 1.2 GB EmbeddingGemma cannot travel to a lent machine that
takes 64 MiB). The drift is then left out: random weights say nothing about how bf16 moves a trained model's
embeddings. The fine-tuning is timed alone (the loss of a random model means nothing either). Prints a table
and writes JSON.

Measured on an H200 (``benchmarks/results/teacher_gpu_h200.json``, random-weight EmbeddingGemma): float32
2,018 texts/s, TF32 2,862, bf16 2,120, so bf16 bought nothing. PyTorch's profiler on 10,240 titles showed
why: in bf16 the GPU worked 1.1 s, but ``aten::_cudnn_attention_forward`` held the CPU 6.0 s (12.5 ms a call
against 0.16 ms on the GPU), apparently building a cuDNN attention plan for each new padded length (a second
pass over the same titles ran at 3,988 texts/s); in float32 (no cuDNN attention) the matrix products are the
GPU's 2.0 of 2.85 s. ``bf16-no-cudnn`` is the next thing to measure there.

    python benchmarks/teacher_gpu.py runs/hd-gemma [--batch-sizes 32,128,512] [--steps 12] \\
        [--random-weights] [--out benchmarks/results/teacher_gpu.json]
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback

from harnesslm.encoding.backend import accelerator, device_engine, encode_in_batches
from harnesslm.run.run_dir import RunDir
from harnesslm.training.teacher_finetune import contrastive_dataset, fine_tune_teacher, positive_pairs
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
console = Console()
ENCODINGS = ("fp32", "tf32", "bf16", "bf16-no-cudnn")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a prepared run directory (harness prepare)")
    parser.add_argument("--batch-sizes", default="32,128,512", help="fine-tuning rows per step, comma-separated")
    parser.add_argument("--steps", type=int, default=8, help="fine-tuning steps per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the step time")
    parser.add_argument(
        "--encodings", default="fp32,tf32,bf16,bf16-no-cudnn", help="catalog encoding settings, comma-separated"
    )
    parser.add_argument("--sample", type=int, default=0, help="encode only this many titles (0: all)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="the teacher's weights are random (benchmarks/random_weights.py): drift is not reported",
    )
    parser.add_argument("--device", default=None, help="default: the GPU; cpu checks the script on a small run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "teacher_gpu.json")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.encodings = [s.strip() for s in args.encodings.split(",") if s.strip()]
    if unknown := [s for s in args.encodings if s not in ENCODINGS]:
        parser.error(f"unknown encoding setting {unknown[0]!r}; choose from {', '.join(ENCODINGS)}")
    return args


def timed_encoding(model, texts: list[str], setting: str, device: str) -> tuple[np.ndarray, float]:
    """``texts`` encoded as documents by ``model`` on ``device`` in ``setting``, and the seconds it took (after
    one warm-up batch)."""
    torch.backends.cuda.matmul.allow_tf32 = setting == "tf32"
    torch.backends.cuda.enable_cudnn_sdp(setting != "bf16-no-cudnn")
    bf16 = setting.startswith("bf16")
    engine = device_engine(model, device, dtype=torch.bfloat16 if bf16 else torch.float32)
    engine.encode(texts[: engine.batch_size])
    synchronize(device)
    start = time.perf_counter()
    embeddings = encode_in_batches(engine, texts, engine.batch_size or 512, progress=True, label=setting)
    synchronize(device)
    seconds = time.perf_counter() - start
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.enable_cudnn_sdp(True)
    del engine
    free(device)
    return embeddings, seconds


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work, so a clock read afterwards includes it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


class StepClock(TrainerCallback):
    """Stamps the end of every optimiser step (after the GPU has finished it)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.stamps: list[float] = []

    def on_step_end(self, args, state, control, **kwargs) -> None:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


def timed_fine_tuning(run: RunDir, batch_size: int, steps: int, warmup: int, device: str) -> dict:
    """Seconds per fine-tuning step at ``batch_size`` rows, with the run's teacher config."""
    cfg = run.config.teacher
    pairs = positive_pairs(run.split("train"), run.config.data.relevant_at)
    items = run.catalog["item_id"].tolist()
    rng = random.Random(0)
    negatives = [rng.sample(items, cfg.hard_negatives) for _ in pairs.queries]
    dataset = contrastive_dataset(pairs.queries, pairs.positives, negatives, run.item_texts, cfg.hard_negatives)
    schedule = cfg.schedule.model_copy(update={"steps": steps, "batch_size": batch_size})
    model = copy.deepcopy(run.base_teacher).to(device)
    clock = StepClock(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    fine_tune_teacher(model, dataset, cfg.model_copy(update={"schedule": schedule}), False, [clock])
    gaps = np.diff(clock.stamps[warmup:])
    seconds = float(np.median(gaps)) if len(gaps) else float("nan")
    del model
    free(device)
    return {
        "batch_size": batch_size,
        "steps_timed": len(gaps),
        "seconds_per_step": seconds,
        "rows_per_s": batch_size / seconds,
        "peak_gpu_gib": peak_gib(device),
    }


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    args = parse_args(argv)
    device = args.device or accelerator()
    if device is None:
        console.print("[red]no GPU here (torch.cuda.is_available() is False); --device cpu measures the CPU")
        return 1
    run = RunDir(args.run_dir)
    teacher = run.base_teacher
    texts = run.catalog["text"].tolist()
    if args.sample:
        texts = texts[: args.sample]
    result: dict = {
        "run_dir": str(args.run_dir),
        "teacher": run.config.teacher.model,
        "random_weights": args.random_weights,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "torch": torch.__version__,
        "catalog_texts": len(texts),
        "max_seq_length": teacher.max_seq_length,
        "encoding": {},
        "fine_tuning": [],
    }
    reference = None
    for setting in args.encodings:
        embeddings, seconds = timed_encoding(teacher, texts, setting, device)
        reference = embeddings if setting == "fp32" else reference
        row = {"seconds": seconds, "texts_per_s": len(texts) / seconds}
        if reference is not None and not args.random_weights:
            cosines = np.sum(embeddings * reference, axis=1)
            row.update(mean_cosine_to_fp32=float(cosines.mean()), min_cosine_to_fp32=float(cosines.min()))
        result["encoding"][setting] = row
        console.print(f"{setting}: {row['texts_per_s']:,.0f} texts/s ({seconds:.1f} s)")
        record.save(args.out, result)  # what is measured survives a later failure
    for batch_size in args.batch_sizes:
        row = timed_fine_tuning(run, batch_size, args.steps, args.warmup, device)
        result["fine_tuning"].append(row)
        peak = "-" if row["peak_gpu_gib"] is None else f"{row['peak_gpu_gib']:.1f}"
        console.print(f"batch {batch_size}: {row['seconds_per_step']:.3f} s a step, peak {peak} GiB")
        record.save(args.out, result)
    print_tables(result)
    return 0


def print_tables(result: dict) -> None:
    title = f"{result['teacher']} on {result['device']}" + (" (random weights)" if result["random_weights"] else "")
    encoding = Table(title=f"catalog encoding, {result['catalog_texts']:,} texts: {title}")
    for column in ("setting", "texts/s", "seconds", "mean cos to fp32", "min cos to fp32"):
        encoding.add_column(column)
    for setting, row in result["encoding"].items():
        cos = [f"{row[k]:.5f}" if k in row else "-" for k in ("mean_cosine_to_fp32", "min_cosine_to_fp32")]
        encoding.add_row(setting, f"{row['texts_per_s']:,.0f}", f"{row['seconds']:.1f}", *cos)
    console.print(encoding)
    precision = "bf16 mixed precision" if result["device"] != "cpu" else "float32"
    tuning = Table(title=f"fine-tuning ({precision}): {title}")
    for column in ("rows a step", "s a step", "rows/s", "peak GiB"):
        tuning.add_column(column)
    for row in result["fine_tuning"]:
        tuning.add_row(
            str(row["batch_size"]),
            f"{row['seconds_per_step']:.3f}",
            f"{row['rows_per_s']:,.0f}",
            "-" if row["peak_gpu_gib"] is None else f"{row['peak_gpu_gib']:.1f}",
        )
    console.print(tuning)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: DSFormer's dense x 2:4-sparse factorisation of a truncated student, against int8 quantisation and
a plain low-rank factoriser of the same size, on quality and CPU latency.

On a finished teacher run (by default the plain teacher of ``benchmarks/teacher_ideas.py``), a truncated student
(the teacher's first ``--layers`` layers) is aligned to the teacher's query embeddings (MSE, the recipe's
alignment) for ``--align-steps``. From it:

- ``fp32``: the student trained ``--recover-steps`` more, as the compressed ones are;
- ``int8``: ``fp32`` with its linear layers quantised to int8 after training (``torch.ao`` dynamic quantisation);
- ``dense-sparse``: every linear layer factorised as dense ``D`` (rank ``--rank-ratio`` of the smaller side)
  times a 2:4-sparse ``S``, then ``--recover-steps`` with the straight-through factoriser;
- ``low-rank``: the same with a dense ``S`` at the rank that keeps as many weights (DSFormer's comparison).

Each is scored on the teacher's index by NDCG@10 and Recall@100 on ``validation`` (``--final``: also ``test``,
once, into a file of its own; nothing here is chosen on either), with a paired-bootstrap interval for the
difference to ``fp32``; and timed on one query
at a time with 2 threads (p50/p99), the factorised students in their factored form (two products per layer,
since torch has no 2:4 kernel on a CPU). Linear weights kept are counted as a 2:4 kernel would store them. Run
it alone.

    python benchmarks/dense_sparse.py [--run runs/teacher-ideas/plain] [--layers 2] [--rank-ratio 0.5] [--final]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from rich.console import Console
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss
from torch import nn

from harnesslm.config import Schedule
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.bootstrap import PairedBootstrap
from harnesslm.evaluation.latency import measure_latency, torch_threads
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.models.model_loading import embedding_dim
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.run.run_dir import RunDir
from harnesslm.serving.searcher import Searcher
from harnesslm.students.dense_sparse import DenseSparseLinear, factorize, materialize
from harnesslm.students.truncated import truncated_student
from harnesslm.training.trainer import train_on_schedule
from results_json import ResultsFile, refuse_second_final

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def align(
    student: SentenceTransformer, queries: list[str], targets: np.ndarray, steps: int, seed: int, rate: float = 1e-4
) -> None:
    """MSE to the teacher's query embeddings (the recipe's alignment) for ``steps`` of 64 queries at ``rate``
    (the base student at the recipe's order of magnitude, the recovery steps of every variant alike at 1e-4)."""
    dataset = Dataset.from_dict({"query": queries, "label": targets.astype(np.float32).tolist()})
    schedule = Schedule(steps=steps, batch_size=64, learning_rate=rate, seed=seed)
    train_on_schedule(student, dataset, EmbedDistillLoss(student, distance_metric="mse"), schedule, label="align")


def linear_weights(model: nn.Module) -> int:
    """Weights of the linear layers as stored: dense layers whole, factorised ones by ``parameters_kept``."""
    total = 0
    for module in model.modules():
        if isinstance(module, DenseSparseLinear):
            total += module.parameters_kept()
        elif isinstance(module, nn.Linear):
            total += module.weight.numel() + (0 if module.bias is None else module.bias.numel())
    return total


def variants(base: SentenceTransformer, queries, targets, args) -> dict[str, tuple[SentenceTransformer, int]]:
    """Each compared student, ready to encode, and its linear weights as stored."""
    out = {}
    fp32 = copy.deepcopy(base)
    align(fp32, queries, targets, args.recover_steps, args.seed + 1)
    out["fp32"] = (fp32, linear_weights(fp32))
    int8 = copy.deepcopy(fp32)
    torch.ao.quantization.quantize_dynamic(int8[0].auto_model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    out["int8"] = (int8, linear_weights(fp32) // 4)  # in float32 weights' terms: one byte a weight against four
    for name, two_four in (("dense-sparse", True), ("low-rank", False)):
        student = copy.deepcopy(base)
        factorize(student[0].auto_model, args.rank_ratio, two_four=two_four)
        align(student, queries, targets, args.recover_steps, args.seed + 1)
        kept = linear_weights(student)
        materialize(student[0].auto_model, factored=True)
        out[name] = (student, kept)
    return out


def scores(run: RunDir, students: dict, split: str) -> dict[str, dict]:
    """Each student's NDCG@10 and Recall@100 on ``split`` through the teacher's index, and its paired
    difference to ``fp32``."""
    qrels = qrels_of(run.split(split))
    names = list(qrels)
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    rows, per_query = {}, {}
    for name, (student, _) in students.items():
        ranked = Searcher(student, run.index).search(names, 100)[0]
        report = evaluate_rankings(dict(zip(names, ranked, strict=True)), qrels, scale)
        per_query[name] = np.array([report.per_query[q]["ndcg@10"] for q in names])
        rows[name] = {split: {m: report.means[m] for m in ("ndcg@10", "recall@100")}}
        console.print(f"{name:13s} {split} NDCG@10 {report.means['ndcg@10']:.4f}")
    boot = PairedBootstrap.draw(len(names))
    for name in rows:
        diff = boot.mean(per_query[name] - per_query["fp32"])
        rows[name][split]["ndcg@10_minus_fp32"] = {"mean": diff.mean, "ci": diff.bounds}
    return rows


def timings(students: dict, queries: list[str]) -> dict[str, dict]:
    """Each student's latency encoding one query at a time, 2 threads (the factorised ones factored)."""
    out = {}
    for name, (student, kept) in students.items():
        with torch_threads(2), torch.inference_mode():
            timed = measure_latency(lambda q, s=student: s.encode([q]), queries, warmup=20)
        out[name] = {"latency_p50_ms": timed.p50_ms, "latency_p99_ms": timed.p99_ms}
        console.print(f"{name:13s} p50 {timed.p50_ms:.2f} ms  p99 {timed.p99_ms:.2f} ms  weights {kept:,}")
    return out


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "teacher-ideas" / "plain")
    parser.add_argument("--layers", type=int, default=2, help="transformer layers of the truncated student")
    parser.add_argument("--align-steps", type=int, default=400)
    parser.add_argument("--recover-steps", type=int, default=200, help="steps after compression (fp32: more)")
    parser.add_argument("--rank-ratio", type=float, default=0.5, help="rank of D over the smaller side of W")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "dense_sparse.json")
    parser.add_argument("--final", action="store_true", help="also score test, once (nothing is chosen on it)")
    parser.add_argument("--rescore", action="store_true", help="with --final: score test again on this commit")
    args = parser.parse_args(argv)
    if not (args.run / "teacher" / "modules.json").exists():
        print(f"no finished teacher run at {args.run}: run benchmarks/teacher_ideas.py --ideas plain first")
        return 2
    if args.final:
        record.extra["rescored"] = refuse_second_final(args.json.with_name(args.json.stem + "_test.json"), args.rescore)
    run = RunDir(args.run)
    torch.manual_seed(args.seed)
    queries = run.query_pool()
    targets = encode(run.teacher, queries, role="query")
    base = truncated_student(run.teacher, args.layers, embedding_dim(run.teacher), max_seq_length=32)
    align(base, queries, targets, args.align_steps, args.seed, rate=1e-3)
    students = variants(base, queries, targets, args)
    results = {
        "run": str(args.run),
        "layers": args.layers,
        "align_steps": args.align_steps,
        "recover_steps": args.recover_steps,
        "rank_ratio": args.rank_ratio,
        "threads": 2,
    }
    latency = timings(students, run.split("validation")["query"].drop_duplicates().tolist()[: args.latency_queries])
    for split in ("validation", "test") if args.final else ("validation",):
        rows = scores(run, students, split)
        for name, (_, kept) in students.items():
            rows[name] |= latency[name] | {"linear_weights_stored": kept}
        path = args.json if split == "validation" else args.json.with_name(args.json.stem + "_test.json")
        record.save(path, results | {"students": rows}, {split: len(qrels_of(run.split(split)))})
    return 0


if __name__ == "__main__":
    sys.exit(main())

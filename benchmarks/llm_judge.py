"""Benchmark: an LLM relevance judge with behaviour neighbours (ProRBP) against the human judgments.

On a sample of a finished run's validation queries (``--final``: its test queries, once, into a file of its own),
every judged (query, item) pair is scored by the LLM judge (``harnesslm.rerank.llm_judge``) at each stage:
the pair alone, plus the items shoppers chose for the K most similar training queries, plus the items they passed
over; and the stages' mean (ProRBP's aggregate). Beside it: the run's fine-tuned teacher (cosine; a
bi-encoder, the toolkit's relevance model when no cross-encoder was trained), BM25 over the sample's item texts,
and random orders. For each scorer:

- agreement with the labels over all pairs: ROC AUC of relevant (``label >= relevant_at``) against not, and
  Spearman's rank correlation with the graded label;
- NDCG@10 of its ranking of each query's judged items (human grades as gains), with a paired-bootstrap
  interval for the difference to the plain (stage-1) judge;
- for the LLM: seconds per pair on this machine.

The behaviour log is the run's training split only, so no judged pair's own label reaches its prompt.

    python benchmarks/llm_judge.py [--run runs/recipe-time/after-homedepot-minilm-empty] [--queries 60] \\
        [--backend transformers|llama_cpp] [--model PATH] [--neighbours 3] [--final]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from harnesslm.encoding.cache import encode
from harnesslm.evaluation.bootstrap import PairedBootstrap
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings
from harnesslm.index.bm25 import BM25Retriever
from harnesslm.pipeline.evaluate import qrels_of
from harnesslm.pool.synthetic_queries import locate_smollm2
from harnesslm.rerank.llm_judge import STAGES, BehaviourLog, LLMJudge
from harnesslm.run.run_dir import RunDir
from results_json import ResultsFile, refuse_second_final

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def ndcg_per_query(frame, scores: np.ndarray, scale: RelevanceScale) -> np.ndarray:
    """NDCG@10 of each query's judged items ranked by ``scores`` (ties broken by item id)."""
    ranked = frame.assign(score=scores).sort_values(["query", "score", "item_id"], ascending=[True, False, True])
    rankings = ranked.groupby("query", sort=False)["item_id"].agg(list).to_dict()
    qrels = qrels_of(frame)
    report = evaluate_rankings(rankings, qrels, scale)
    return np.array([report.per_query[q]["ndcg@10"] for q in sorted(qrels)])


def agreement(frame, scores: np.ndarray, scale: RelevanceScale) -> dict[str, float]:
    relevant = scale.is_relevant(frame["label"].to_numpy())
    auc = float(roc_auc_score(relevant, scores)) if 0 < relevant.sum() < len(relevant) else float("nan")
    return {"auc": auc, "spearman": float(spearmanr(scores, frame["label"]).statistic)}


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "recipe-time" / "after-homedepot-minilm-empty")
    parser.add_argument("--queries", type=int, default=60, help="queries sampled (all their judged items)")
    parser.add_argument("--neighbours", type=int, default=3, help="similar training queries in the prompt")
    parser.add_argument("--backend", default="transformers", choices=["transformers", "llama_cpp"])
    parser.add_argument("--model", type=Path, help="the LLM (default: the bundled SmolLM2-135M-Instruct GGUF)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--random-orders", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "llm_judge.json")
    parser.add_argument("--final", action="store_true", help="score the test split once instead")
    parser.add_argument("--rescore", action="store_true", help="with --final: score test again on this commit")
    args = parser.parse_args(argv)
    if not (args.run / "index" / "meta.json").exists():
        print(f"no finished run at {args.run} (run benchmarks/homedepot_recipe.py or `harness run` first)")
        return 2
    split = "test" if args.final else "validation"
    path = args.json.with_name(args.json.stem + "_test.json") if args.final else args.json
    if args.final:
        record.extra["rescored"] = refuse_second_final(path, args.rescore)
    run = RunDir(args.run)
    data = run.config.data
    scale = RelevanceScale(data.label_offset, data.relevant_at)
    judged = run.split(split)
    rng = np.random.default_rng(args.seed)
    queries = sorted(judged["query"].unique())
    sample = sorted(rng.choice(queries, size=min(args.queries, len(queries)), replace=False).tolist())
    frame = judged[judged["query"].isin(sample)].sort_values(["query", "item_id"]).reset_index(drop=True)
    texts = [run.item_texts[i] for i in frame["item_id"]]
    behaviour = BehaviourLog.from_judgments(run.split("train"), run.item_texts, data.relevant_at)

    model = args.model or locate_smollm2()
    began = time.perf_counter()
    judge = LLMJudge(model, behaviour, backend=args.backend, neighbours=args.neighbours, n_threads=args.threads)
    load_s = time.perf_counter() - began
    began = time.perf_counter()
    judged_scores = judge.score(frame["query"].tolist(), texts, progress=True)
    judge_s = time.perf_counter() - began

    q = encode(run.teacher, frame["query"].tolist(), role="query")
    d = encode(run.teacher, texts, role="document")
    bm25 = BM25Retriever.fit([str(i) for i in range(len(texts))], texts)
    lexical = np.zeros(len(frame))
    for row, query in enumerate(frame["query"]):
        hits = dict(bm25.search([query], len(texts))[0])
        lexical[row] = hits.get(str(row), 0.0)
    scorers = {f"llm {stage}": judged_scores[i] for i, stage in enumerate(STAGES)}
    scorers["llm progressive mean (ProRBP)"] = judged_scores[-1]
    scorers["fine-tuned teacher (cosine)"] = np.sum(q * d, axis=1)
    scorers["bm25"] = lexical

    reference = ndcg_per_query(frame, scorers["llm plain"], scale)
    boot = PairedBootstrap.draw(len(reference), seed=args.seed)
    rows = {}
    for name, scores in scorers.items():
        ndcg = ndcg_per_query(frame, scores, scale)
        diff = boot.mean(ndcg - reference)
        rows[name] = {
            "ndcg@10": float(ndcg.mean()),
            "ndcg@10_minus_llm_plain": {"mean": diff.mean, "ci": diff.bounds},
            **agreement(frame, scores, scale),
        }
    random_ndcg = [ndcg_per_query(frame, rng.random(len(frame)), scale).mean() for _ in range(args.random_orders)]
    rows["random order"] = {"ndcg@10": float(np.mean(random_ndcg)), "auc": 0.5, "spearman": 0.0}
    figures = {
        "run": str(args.run),
        "split": split,
        "model": str(model),
        "backend": args.backend,
        "neighbours": args.neighbours,
        "pairs": len(frame),
        "relevant_share": float(scale.is_relevant(frame["label"].to_numpy()).mean()),
        "llm_load_s": round(load_s, 1),
        "llm_seconds_per_pair": round(judge_s / max(len(frame), 1), 3),
        "scorers": rows,
    }
    record.save(path, figures, {split: len(sample)})
    for name, row in rows.items():
        console.print(f"{name:32s} NDCG@10 {row['ndcg@10']:.4f}  AUC {row['auc']:.3f}  Spearman {row['spearman']:+.3f}")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: where a student loses to its teacher, query by query, on the **validation** split.

Each validation query gets the teacher's and the student's NDCG@10 (same index) and is put in every class it
belongs to: numbers and units (``3/4 in.``, ``20v``), model codes (letters and digits in one word), a brand
first word, a rare word (seen under 3 times in the catalog and the training queries), a frequent catalog
phrase (a two-word unit seen 20 times or more in titles), word-order sensitive (the teacher's embedding of the
query with its words reversed has a cosine under 0.95 to the original: a mean of token rows cannot tell them
apart), and its length in words. Per class: queries, mean NDCG@10 of both, and the share of the student's
whole NDCG@10 loss it holds: what a lever should aim at.

    python benchmarks/static_misses.py --run runs/hd-gemma --student static-mpnet-table --name gemma
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harnesslm.encoding.cache import encode
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings, qrels_from_judgments
from harnesslm.run.run_dir import RunDir
from harnesslm.run.student_store import latest_phase, load_student
from results_json import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
UNIT = re.compile(
    r"\d\s*(?:in\b|in\.|inch|\"|ft\b|ft\.|foot|feet|v\b|volt|gal|lb|oz|mm\b|cm\b|amp|watt|w\b|btu|psi|sq|cu|x\s*\d)",
    re.IGNORECASE,
)
WORD = re.compile(r"[a-z0-9]+(?:[/.-][a-z0-9]+)*")


def classes(query: str, counts: Counter, phrases: set[str], brands: set[str], order_cosine: float) -> list[str]:
    """Every class a query falls in (a query can be in several)."""
    words = WORD.findall(query.lower())
    out = []
    if any(ch.isdigit() for ch in query):
        out.append("numbers")
    if UNIT.search(query):
        out.append("numbers with units")
    if any(re.search(r"[a-z]", w) and re.search(r"\d", w) and len(w) >= 3 for w in words):
        out.append("model codes (letters+digits)")
    if words and words[0] in brands:
        out.append("brand first word")
    if any(counts[w] < 3 for w in words):
        out.append("rare word (<3 in shop texts)")
    if any(f"{a} {b}" in phrases for a, b in pairwise(words)):
        out.append("frequent catalog phrase")
    if len(words) > 1 and order_cosine < 0.95:
        out.append("word order matters to the teacher")
    out.append("1 word" if len(words) <= 1 else "2-3 words" if len(words) <= 3 else "4+ words")
    return out


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--student", help="a student of the run (its latest phase)")
    parser.add_argument("--embeddings", type=Path, help="or: its validation query embeddings (peers.py's cache)")
    parser.add_argument("--name", required=True, help="names the results file: static_misses_<name>.json")
    args = parser.parse_args(argv)

    run = RunDir(args.run)
    frame = run.split("validation")
    qrels = qrels_from_judgments(frame["query"], frame["item_id"], frame["label"])
    queries = list(qrels)
    scale = RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at)
    teacher_emb = encode(run.teacher, queries, batch_size=128, role="query")
    if args.embeddings:
        student_emb = np.load(args.embeddings)
    else:
        student = load_student(run, args.student, latest_phase(run, args.student))
        student_emb = encode(student, queries, batch_size=256)
    reversed_emb = encode(run.teacher, [" ".join(q.split()[::-1]) for q in queries], batch_size=128, role="query")
    order_cos = np.sum(teacher_emb * reversed_emb, axis=1)

    def ndcg(embeddings: np.ndarray) -> np.ndarray:
        ranked, _ = run.index.search(embeddings, 10)
        report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, scale)
        return np.array([report.per_query[q]["ndcg@10"] for q in queries])

    teacher, student = ndcg(teacher_emb), ndcg(student_emb)
    texts = [*run.catalog["text"], *run.split("train")["query"]]
    counts = Counter(w for t in texts for w in WORD.findall(t.lower()))
    bigrams: Counter[str] = Counter()
    for title in run.catalog["text"]:
        words = WORD.findall(title.lower())
        bigrams.update(f"{a} {b}" for a, b in pairwise(words))
    phrases = {p for p, n in bigrams.items() if n >= 20}
    firsts = Counter(WORD.findall(t.lower())[0] for t in run.catalog["text"] if WORD.findall(t.lower()))
    brands = {w for w, n in firsts.items() if n >= 5 and not any(ch.isdigit() for ch in w)}
    loss = np.maximum(teacher - student, 0)
    rows: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        for name in classes(query, counts, phrases, brands, float(order_cos[i])):
            rows.setdefault(name, []).append(i)
    total_loss = float(loss.sum()) or 1.0
    figures = {}
    table = Table(title=f"{args.student or args.embeddings} vs teacher, {len(queries)} validation queries")
    for column in ("class", "queries", "teacher", "student", "kept %", "share of loss %"):
        table.add_column(column)
    for name, idx in sorted(rows.items(), key=lambda kv: -loss[kv[1]].sum()):
        f = {
            "queries": len(idx),
            "teacher_ndcg@10": float(teacher[idx].mean()),
            "student_ndcg@10": float(student[idx].mean()),
            "kept_%": 100 * float(student[idx].mean()) / max(float(teacher[idx].mean()), 1e-9),
            "share_of_loss_%": 100 * float(loss[idx].sum()) / total_loss,
        }
        figures[name] = f
        table.add_row(
            name,
            str(f["queries"]),
            f"{f['teacher_ndcg@10']:.4f}",
            f"{f['student_ndcg@10']:.4f}",
            f"{f['kept_%']:.1f}",
            f"{f['share_of_loss_%']:.1f}",
        )
    Console().print(table)
    overall = {
        "teacher_ndcg@10": float(teacher.mean()),
        "student_ndcg@10": float(student.mean()),
        "queries_lost": int((student < teacher).sum()),
        "queries_won": int((student > teacher).sum()),
    }
    Console().print(overall)
    path = record.save(
        ROOT / "benchmarks" / "results" / f"static_misses_{args.name}.json",
        {"run": str(args.run), "student": args.student, "overall": overall, "classes": figures},
        {"validation": len(queries)},
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

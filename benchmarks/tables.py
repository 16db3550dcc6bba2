"""Write the Markdown tables of README.md and docs/results.md from the results files, so a figure appears once,
in a table generated from the file that measured it.

A table lives between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in a Markdown file; this script
rewrites what is between the markers and leaves the prose around them alone. Each table ends with the line
that names its source files, their commits and dates, and the command that regenerates them.

    python benchmarks/tables.py           # rewrite the tables
    python benchmarks/tables.py --check   # exit 1 when a committed table differs from what the files give
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "results.md", ROOT / "docs" / "scaling.md")
MARKER = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def source(*names: str) -> str:
    """The line under a table: each file with its commit and date, and the command that wrote it."""
    parts = []
    for name in names:
        data = load(name)
        if data is None:
            continue
        p = data["provenance"]
        dirty = "+changes" if p.get("dirty") else ""
        parts.append(f"`{name}` ({p['commit'][:8]}{dirty}, {p['date'][:10]}, {p['machine']['cpu']}): `{p['command']}`")
    return "Source: " + "; ".join(parts) if parts else ""


def missing(command: str) -> str:
    return f"_Not measured with the current code yet: `{command}`._\n"


def ci(bounds: list[float] | None, digits: int = 1) -> str:
    return f" [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]" if bounds else ""


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


# the tables --------------------------------------------------------------------------------------------------
def peers_table(name: str) -> Callable[[], str]:
    def render() -> str:
        data = load(f"peers_{name}.json")
        if data is None:
            return missing(f"python benchmarks/peers.py --run RUN --name {name} --final")
        rows = data["rows"]
        teacher = rows["teacher"]
        lines = [
            f"Teacher: NDCG@10 {teacher['ndcg@10']:.4f}, Recall@100 {teacher['recall@100']:.4f}, batch-1 p50 "
            f"{teacher['p50_ms']:.1f} ms ({teacher['runtime']}); {data['provenance']['splits'].get('test', '?')} test "
            f"queries, scored once. Difference: NDCG@10 minus our shipped student's ({data['shipped']}), paired.",
            "",
            row(
                "row",
                "NDCG@10 kept % [95% CI]",
                "Recall@100 kept %",
                "difference [95% CI]",
                "p50 ms",
                "speed-up",
                "train s",
                "MB",
            ),
            row(*["---"] * 8),
        ]
        for label, r in rows.items():
            if label == "teacher":
                continue
            lines.append(
                row(
                    f"{label} ({r['variant']})" if not label.startswith("ours") else label,
                    f"{r['ndcg_recovery_%']:.1f}{ci(r['ndcg_recovery_ci_%'])}",
                    f"{r['recall_recovery_%']:.1f}",
                    f"{r['ndcg_difference_to_shipped']:+.4f}{ci(r['ndcg_difference_to_shipped_ci'], 4)}",
                    f"{r['p50_ms']:.3f} ({r['runtime']})",
                    f"{r['speedup_p50']:.0f}x",
                    f"{r['train_seconds']:.0f}",
                    r["size_mb"],
                )
            )
        return "\n".join([*lines, "", source(f"peers_{name}.json")]) + "\n"

    return render


def levers_table(name: str) -> Callable[[], str]:
    def render() -> str:
        data = load(f"peers_{name}_validation.json")
        if data is None:
            return missing(f"python benchmarks/peers.py --run RUN --name {name}")
        lines = [
            f"Validation: the {data['provenance']['splits']['validation (figures)']} queries no choice was made on "
            f"(choices on the other {data['provenance']['splits']['validation (choices)']}); teacher NDCG@10 "
            f"{data['teacher_validation_ndcg@10']:.4f}. Difference: NDCG@10 minus the shipped student's, paired.",
            "",
            row("variant", "NDCG@10", "kept %", "difference [95% CI]", "p50 ms", "train s"),
            row(*["---"] * 6),
        ]
        for label, v in data["variants"].items():
            diff = v.get("ndcg_difference_to_shipped")
            lines.append(
                row(
                    label,
                    f"{v['ndcg@10']:.4f}",
                    f"{v['recovery_%']:.1f}",
                    f"{diff:+.4f}{ci(v.get('ndcg_difference_ci'), 4)}" if diff is not None else "",
                    f"{v['p50_ms']:.3f}",
                    f"{v['train_seconds']:.0f}",
                )
            )
        return "\n".join([*lines, "", source(f"peers_{name}_validation.json")]) + "\n"

    return render


def misses_table(name: str) -> Callable[[], str]:
    def render() -> str:
        data = load(f"static_misses_{name}.json")
        if data is None:
            return missing(f"python benchmarks/static_misses.py --run RUN --student NAME --name {name}")
        o = data["overall"]
        lines = [
            f"{data['student']} against its teacher on the validation queries: NDCG@10 {o['student_ndcg@10']:.4f} "
            f"against {o['teacher_ndcg@10']:.4f}; {o['queries_lost']} queries lost, {o['queries_won']} won.",
            "",
            row("queries with", "queries", "teacher NDCG@10", "student NDCG@10", "kept %", "share of the loss %"),
            row(*["---"] * 6),
        ]
        for label, c in data["classes"].items():
            lines.append(
                row(
                    label,
                    c["queries"],
                    f"{c['teacher_ndcg@10']:.4f}",
                    f"{c['student_ndcg@10']:.4f}",
                    f"{c['kept_%']:.1f}",
                    f"{c['share_of_loss_%']:.1f}",
                )
            )
        return "\n".join([*lines, "", source(f"static_misses_{name}.json")]) + "\n"

    return render


def recipe_time_table() -> str:
    files = sorted(p.name for p in RESULTS.glob("recipe_time_*.json") if not p.name.endswith("_test.json"))
    if not files:
        return missing("python benchmarks/recipe_time.py --config configs/homedepot-minilm.yaml --cache empty")
    header = ("config", "code", "cache", "wall min", "teacher s", "index s", "align s", "refine s")
    lines = [
        row(*header, "validation NDCG@10 (students chosen on it)", "test: students kept % [95% CI]"),
        row(*["---"] * (len(header) + 2)),
    ]
    sources = list(files)
    for name in files:
        d = load(name)
        phases = d["phase_seconds"]
        valid = ", ".join(f"{s} {v['ndcg@10']:.4f}" for s, v in d["validation"].items())
        test = load(name.replace(".json", "_test.json"))
        kept = ""
        if test is not None:
            sources.append(name.replace(".json", "_test.json"))
            kept = ", ".join(
                f"{s} {v['ndcg_recovery_%']:.1f}{ci(v.get('ndcg_recovery_ci_%'))}"
                for s, v in test["test"].items()
                if "ndcg_recovery_ci_%" in v and "(" in s
            )
        config = d["config"] + (f", {d['small_queries']} queries" if d.get("small_queries") else "")
        times = (f"{phases.get(p, 0):.0f}" for p in ("teacher", "index", "align", "refine"))
        lines.append(row(config, d["label"], d["cache"], f"{d['wall_seconds'] / 60:.1f}", *times, valid, kept))
    return "\n".join([*lines, "", source(*sources)]) + "\n"


def hybrid_recall_table(name: str) -> Callable[[], str]:
    def render() -> str:
        data = load(f"hybrid_recall_{name}.json")
        if data is None:
            return missing(f"python benchmarks/hybrid_recall.py RUN --name {name}")
        systems = list(data["systems"])
        lines = [
            f"Validation queries ({data['provenance']['splits']['validation']}): Recall@100 of the fused ranking minus "
            f"the dense one, by dense weight. The fused top-100 is the dense top-100 reordered from weight "
            f"{data['recall_keeping_weight']:.3f} up.",
            "",
            row("dense weight", *systems),
            row(*["---"] * (len(systems) + 1)),
        ]
        for weight in data["systems"][systems[0]]["weights"]:
            cells = [f"{data['systems'][s]['weights'][weight]['recall@100_change']:+.4f}" for s in systems]
            lines.append(row(weight, *cells))
        return "\n".join([*lines, "", source(f"hybrid_recall_{name}.json")]) + "\n"

    return render


def teacher_negatives_table() -> str:
    data = load("teacher_negatives.json")
    if data is None:
        return missing("python benchmarks/teacher_negatives.py --miners teacher,static,bm25")
    miners = data["miners"]
    first = next(iter(miners))
    lines = [
        row("miner", "validation NDCG@10", f"minus {first} [95% CI]", "validation Recall@100", "test NDCG@10 [95% CI]"),
        row(*["---"] * 5),
    ]
    for miner, r in miners.items():
        v, t = r["validation"], r["test"]
        diff = v[f"ndcg@10_minus_{first}"]
        lines.append(
            row(
                miner,
                f"{v['ndcg@10']:.4f}",
                f"{diff['mean']:+.4f}{ci(diff['ci'], 4)}",
                f"{v['recall@100']:.4f}",
                f"{t['ndcg@10']:.4f}{ci(t['ndcg@10_ci'], 4)}",
            )
        )
    return "\n".join([*lines, "", source("teacher_negatives.json")]) + "\n"


def difference(split: dict, metric: str, first: str) -> str:
    """A paired difference to the first row, with its interval (``-`` when the split has none)."""
    key = f"{metric}_minus_{first}"
    return f"{split[key]['mean']:+.4f}{ci(split[key]['ci'], 4)}" if key in split else "-"


def teacher_ideas_table() -> str:
    data = load("teacher_ideas.json")
    if data is None:
        return missing("python benchmarks/teacher_ideas.py --ideas plain,triplet,fgm --ood-holdout 0.1")
    final = load("teacher_ideas_test.json") or {"ideas": {}}
    ideas = data["ideas"]
    first = next(iter(ideas))
    header = ["idea", "validation NDCG@10", f"minus {first} [95% CI]", "validation R@100", f"minus {first} [95% CI]"]
    header += [
        "ood_validation NDCG@10",
        f"minus {first} [95% CI]",
        "teacher step s",
        "test NDCG@10",
        f"minus {first} [95% CI]",
        "ood_test NDCG@10",
        f"minus {first} [95% CI]",
    ]
    lines = [row(*header), row(*["---"] * len(header))]
    for idea, r in ideas.items():
        v, o = r["validation"], r["ood_validation"]
        test = final["ideas"].get(idea, {})
        lines.append(
            row(
                idea,
                f"{v['ndcg@10']:.4f}",
                f"{v[f'ndcg@10_minus_{first}']['mean']:+.4f}{ci(v[f'ndcg@10_minus_{first}']['ci'], 4)}",
                f"{v['recall@100']:.4f}",
                difference(v, "recall@100", first),
                f"{o['ndcg@10']:.4f}",
                difference(o, "ndcg@10", first),
                f"{r['teacher_step_seconds']:.0f}" if r.get("teacher_step_seconds") else "-",
                f"{test['test']['ndcg@10']:.4f}" if test else "-",
                difference(test["test"], "ndcg@10", first) if test else "-",
                f"{test['ood_test']['ndcg@10']:.4f}" if test else "-",
                difference(test["ood_test"], "ndcg@10", first) if test else "-",
            )
        )
    return "\n".join([*lines, "", source("teacher_ideas.json", "teacher_ideas_test.json")]) + "\n"


def ray_overhead_table() -> str:
    data = load("ray_overhead.json")
    if data is None:
        return missing("python benchmarks/ray_overhead.py")
    lines = [row("executor", "workers", "pass s", "texts/s", "cluster start s", "max abs diff"), row(*["---"] * 6)]
    for r in data["rows"]:
        start = "-" if r["cluster_start_s"] is None else f"{r['cluster_start_s']:.1f}"
        lines.append(
            row(
                r["executor"],
                r["workers"],
                r["seconds"],
                r["texts_per_s"],
                start,
                f"{r['max_abs_diff_to_in_process']:.1e}",
            )
        )
    return "\n".join([*lines, "", source("ray_overhead.json")]) + "\n"


def milvus_server_table() -> str:
    data = load("milvus_server.json")
    if data is None:
        return missing("python benchmarks/index_kinds.py RUN --kinds exact hnsw milvus --milvus-server")
    k = data["k"]
    lines = [row("kind", "settings", "build s", "p50 ms", "p99 ms", f"recall@{k}"), row(*["---"] * 6)]
    for r in data["results"]:
        lines.append(
            row(
                r["kind"],
                r["settings"],
                f"{r['build_seconds']:.1f}",
                f"{r['latency_p50_ms']:.3f}",
                f"{r['latency_p99_ms']:.3f}",
                f"{r['recall']:.4f}",
            )
        )
    return "\n".join([*lines, "", source("milvus_server.json")]) + "\n"


def hot_swap_table() -> str:
    data = load("hot_swap.json")
    if data is None:
        return missing("python benchmarks/hot_swap.py RUN --clients 16")
    lines = [row("window", "seconds", "requests", "errors", "p50 ms", "p99 ms", "max ms"), row(*["---"] * 7)]
    for name in ("before", "during", "after"):
        w = data[name]
        lines.append(row(name, w["seconds"], w["requests"], w["errors"], w["p50_ms"], w["p99_ms"], w["max_ms"]))
    u = data["update"]
    note = (
        f"{data['clients']} clients; update of {u['changes']} retitled and {u['deletions']} deleted items applied "
        f"on disk in {u['seconds']} s; the swap took {data['swap']['seconds']} s; deleted items returned after it: "
        f"{data['deleted_items_returned_after_swap']}."
    )
    return "\n".join([*lines, "", note, "", source("hot_swap.json")]) + "\n"


def llm_judge_table() -> str:
    data = load("llm_judge.json")
    if data is None:
        return missing("python benchmarks/llm_judge.py")
    final = load("llm_judge_test.json") or {"scorers": {}}
    header = ["scorer", "validation NDCG@10", "minus llm plain [95% CI]", "AUC", "Spearman", "test NDCG@10"]
    lines = [row(*header), row(*["---"] * len(header))]
    for name, r in data["scorers"].items():
        diff = r.get("ndcg@10_minus_llm_plain")
        test = final["scorers"].get(name)
        lines.append(
            row(
                name,
                f"{r['ndcg@10']:.4f}",
                f"{diff['mean']:+.4f}{ci(diff['ci'], 4)}" if diff else "-",
                f"{r['auc']:.3f}",
                f"{r['spearman']:+.3f}",
                f"{test['ndcg@10']:.4f}" if test else "-",
            )
        )
    lines += [
        "",
        f"{data['pairs']:,} judged pairs of {data['provenance']['splits'].get('validation', '?')} validation queries "
        f"({data['relevant_share']:.0%} relevant); LLM `{Path(data['model']).name}` through {data['backend']}, "
        f"{data['neighbours']} behaviour neighbours, {data['llm_seconds_per_pair']} s per pair (all stages).",
    ]
    return "\n".join([*lines, "", source("llm_judge.json", "llm_judge_test.json")]) + "\n"


def scale_table() -> str:
    data = load("scale.json")
    if data is None:
        return missing("python benchmarks/scale.py --base CATALOG_EMBEDDINGS.npy")
    header = ["items", "kind", "build s", "memory MB", "bytes/item", "p50 ms", "p99 ms", "recall@100"]
    header += ["update by rebuild items/s", "in-place add items/s", "in-place remove items/s"]
    lines = [row(*header), row(*["---"] * len(header))]
    for r in data["rows"]:
        if "skipped" in r:
            lines.append(row(f"{r['items']:,}", r["kind"], r["skipped"], *[""] * (len(header) - 3)))
            continue
        lines.append(
            row(
                f"{r['items']:,}",
                r["kind"],
                r["build_s"],
                r["memory_mb"],
                r["bytes_per_item"],
                r["p50_ms"],
                r["p99_ms"],
                r["recall@100"],
                f"{r['update_by_rebuild_items_per_s']:,}",
                f"{r['add_items_per_s']:,}",
                f"{r['remove_items_per_s']:,}" if "remove_items_per_s" in r else "tombstones (not timed)",
            )
        )
    servers = sorted({r["where"] for r in data["rows"] if r["kind"] == "milvus" and "where" in r})
    if servers:
        lines += [
            "",
            f"milvus: {'; '.join(servers)}; its memory is the server process's resident growth over the build "
            "(vectors, HNSW graph and the server's own buffers), its latency includes the network client's round "
            "trip, and its update columns are live upserts and deletes (`MilvusItemIndex.update_live`).",
        ]
    lines += ["", *scale_projection(data)]
    return "\n".join([*lines, "", source("scale.json")]) + "\n"


SHARD_GIB = 16
"""What one serving machine's index shard may hold (of a 24 GiB machine like this one, the rest for the process)."""


def scale_projection(data: dict) -> list[str]:
    """100M items, projected from each kind's bytes per item at the largest size measured (arithmetic, not a
    measurement): memory, 16 GiB shards, and a flat scan's latency grown linearly with the items it scans."""
    largest: dict[str, dict] = {}
    for r in data["rows"]:
        if "skipped" not in r and r["items"] >= largest.get(r["kind"], {}).get("items", 0):
            largest[r["kind"]] = r
    lines = [
        "Projected to 100M items from the largest measured size, arithmetic rather than measurement: memory = bytes "
        f"per item x 1e8, cut into {SHARD_GIB} GiB shards (each on its own machine, searched in parallel); a "
        "shard's p50 grows with the items it holds as a flat scan does (linearly), as IVF does when its lists grow "
        "as the square root of the items (the default), and as HNSW's does (with the log of the items):",
        "",
        row("kind", "measured at", "memory at 100M GiB", f"{SHARD_GIB} GiB shards", "p50 per shard ms (projected)"),
        row(*["---"] * 5),
    ]
    for kind, r in largest.items():
        gib = r["bytes_per_item"] * 1e8 / 2**30
        shards = max(1, -(-int(gib) // SHARD_GIB))
        growth = 1e8 / shards / r["items"]
        if kind in ("hnsw", "milvus"):  # the Milvus server's index is HNSW here
            growth = math.log(1e8 / shards) / math.log(r["items"])
        elif kind == "ivfpq":
            growth = math.sqrt(growth)
        lines.append(row(kind, f"{r['items']:,}", f"{gib:.0f}", shards, f"{r['p50_ms'] * growth:.1f}"))
    return lines


def headline_table() -> str:
    lines = [
        row("teacher", "query encoder", "NDCG@10 kept % [95% CI]", "Recall@100 kept %", "batch-1 p50", "speed-up"),
        row(*["---"] * 6),
    ]
    names = []
    for name, teacher in (("minilm", "MiniLM-L6 fine-tuned"), ("gemma", "EmbeddingGemma-300M fine-tuned")):
        data = load(f"peers_{name}.json")
        if data is None:
            continue
        names.append(f"peers_{name}.json")
        t = data["rows"]["teacher"]
        lines.append(
            row(
                f"{teacher} (NDCG@10 {t['ndcg@10']:.4f})",
                "the teacher itself",
                "100",
                "100",
                f"{t['p50_ms']:.1f} ms",
                "1x",
            )
        )
        for label, r in data["rows"].items():
            if label.startswith("ours") or label.endswith("tuned on validation"):
                lines.append(
                    row(
                        "",
                        label,
                        f"{r['ndcg_recovery_%']:.1f}{ci(r['ndcg_recovery_ci_%'])}",
                        f"{r['recall_recovery_%']:.1f}",
                        f"{r['p50_ms']:.3f} ms",
                        f"{r['speedup_p50']:.0f}x",
                    )
                )
    if not names:
        return missing("python benchmarks/peers.py --run RUN --name minilm --final")
    return "\n".join([*lines, "", source(*names)]) + "\n"


def relevance_ideas_table() -> str:
    data = load("relevance_ideas.json")
    if data is None:
        return missing("python benchmarks/relevance_ideas.py")
    final = load("relevance_ideas_test.json") or {"ideas": {}}
    ideas = data["ideas"]
    first = next(n for n in ideas if n != "retriever order")
    header = ["relevance teacher", "validation NDCG@10", f"minus {first} [95% CI]", "ood_validation NDCG@10"]
    header += [f"minus {first} [95% CI]", "training s", "test NDCG@10", "ood_test NDCG@10"]
    lines = [row(*header), row(*["---"] * len(header))]
    for name, r in ideas.items():
        v, o = r["validation"], r["ood_validation"]
        test = final["ideas"].get(name, {})
        lines.append(
            row(
                name,
                f"{v['ndcg@10']:.4f}",
                f"{v[f'ndcg@10_minus_{first}']['mean']:+.4f}{ci(v[f'ndcg@10_minus_{first}']['ci'], 4)}",
                f"{o['ndcg@10']:.4f}",
                f"{o[f'ndcg@10_minus_{first}']['mean']:+.4f}{ci(o[f'ndcg@10_minus_{first}']['ci'], 4)}",
                f"{r['teacher_seconds']:.0f}" if r.get("teacher_seconds") else "-",
                f"{test['test']['ndcg@10']:.4f}" if test else "-",
                f"{test['ood_test']['ndcg@10']:.4f}" if test else "-",
            )
        )
    lines += [
        "",
        f"Each cross-encoder teacher trained {data['steps']} steps and re-ranks the bi-encoder teacher's top-"
        f"{data['k']}; `retriever order` is that top-{data['k']} as retrieved.",
    ]
    return "\n".join([*lines, "", source("relevance_ideas.json", "relevance_ideas_test.json")]) + "\n"


def dense_sparse_table() -> str:
    data = load("dense_sparse.json")
    if data is None:
        return missing("python benchmarks/dense_sparse.py")
    final = load("dense_sparse_test.json") or {"students": {}}
    header = ["student", "validation NDCG@10", "minus fp32 [95% CI]", "validation R@100", "p50 ms", "p99 ms"]
    header += ["linear weights stored", "test NDCG@10"]
    lines = [row(*header), row(*["---"] * len(header))]
    for name, r in data["students"].items():
        v = r["validation"]
        test = final["students"].get(name)
        lines.append(
            row(
                name,
                f"{v['ndcg@10']:.4f}",
                f"{v['ndcg@10_minus_fp32']['mean']:+.4f}{ci(v['ndcg@10_minus_fp32']['ci'], 4)}",
                f"{v['recall@100']:.4f}",
                f"{r['latency_p50_ms']:.2f}",
                f"{r['latency_p99_ms']:.2f}",
                f"{r['linear_weights_stored']:,}",
                f"{test['test']['ndcg@10']:.4f}" if test else "-",
            )
        )
    lines += [
        "",
        f"A {data['layers']}-layer truncated student aligned {data['align_steps']} steps, then "
        f"{data['recover_steps']} more (fp32) or after compression (rank ratio {data['rank_ratio']}); one query "
        f"at a time, {data['threads']} threads. Linear weights stored count float32 weights: a factorised "
        "layer's as a 2:4 kernel keeps them (half of the sparse factor), int8's as its bytes over 4.",
    ]
    return "\n".join([*lines, "", source("dense_sparse.json", "dense_sparse_test.json")]) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "headline": headline_table,
    "peers-minilm": peers_table("minilm"),
    "peers-gemma": peers_table("gemma"),
    "levers-gemma": levers_table("gemma"),
    "levers-minilm": levers_table("minilm"),
    "misses-gemma": misses_table("gemma"),
    "recipe-time": recipe_time_table,
    "hybrid-recall-minilm": hybrid_recall_table("minilm"),
    "teacher-negatives": teacher_negatives_table,
    "teacher-ideas": teacher_ideas_table,
    "ray-overhead": ray_overhead_table,
    "milvus-server": milvus_server_table,
    "hot-swap": hot_swap_table,
    "scale": scale_table,
    "llm-judge": llm_judge_table,
    "relevance-ideas": relevance_ideas_table,
    "dense-sparse": dense_sparse_table,
}


def render(text: str) -> str:
    """``text`` with every known table between its markers regenerated."""

    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r} (known: {', '.join(TABLES)})")
        return f"{match.group(1)}{TABLES[name]()}{match.group(4)}"

    return MARKER.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the committed tables are current")
    args = parser.parse_args(argv)
    stale = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"tables out of date in {', '.join(stale)}: run python benchmarks/tables.py")
        return 1
    print("tables rewritten in " + ", ".join(stale) if stale else "tables are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())

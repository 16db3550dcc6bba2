"""The run's Markdown report: quality and speed tables built from metrics.json, bench.json and timings.json."""

from __future__ import annotations

import math

from harnesslm.atomic import write_text
from harnesslm.pipeline.run_dir import RunDir

INT8_TAG = ", onnx-int8)"  # label suffix of an int8 ONNX export (pipeline.export.onnx_label)
QUALITY_COLUMNS = ("ndcg@10", "recall@100", "p@10", "mrr@10", "ndcg_recovery_%", "recall_recovery_%")


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def quality_table(metrics: dict) -> str:
    header = ["system", "role", "NDCG@10", "Recall@100", "P@10", "MRR@10", "NDCG kept %", "Recall kept %"]
    rows = []
    for name, values in metrics.get("systems", {}).items():
        cells = [_fmt(values.get(c), 1 if c.endswith("%") else 4) for c in QUALITY_COLUMNS]
        rows.append([name, values["role"], *cells])
    return _table(header, rows)


def int8_drift(metrics: dict) -> str | None:
    """One line: NDCG@10 of each int8 ONNX export minus its float PyTorch student's, in points."""
    systems = metrics.get("systems", {})
    drifts = []
    for name, values in systems.items():
        float_name = name[: -len(INT8_TAG)] + ")"  # "static (refined, onnx-int8)" -> "static (refined)"
        if name.endswith(INT8_TAG) and float_name in systems:
            points = 100 * (values["ndcg@10"] - systems[float_name]["ndcg@10"])
            drifts.append(f"{float_name} {points:+.2f} points")
    if not drifts:
        return None
    return "int8 ONNX NDCG@10 drift vs the float student: " + "; ".join(drifts) + "."


def speed_table(bench: dict) -> str:
    header = [
        "encoder",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "queries/s",
        "speed-up p50",
        "throughput x",
        "encode+search p50 ms",
    ]
    rows = []
    for name, v in bench.get("encoders", {}).items():
        lat = v["latency"]
        rows.append(
            [
                name,
                _fmt(lat["p50_ms"], 3),
                _fmt(lat["p95_ms"], 3),
                _fmt(lat["p99_ms"], 3),
                f"{v['queries_per_s']:,.0f}",
                f"{v['latency_speedup_p50']:.1f}x",
                f"{v['throughput_ratio']:.1f}x",
                _fmt(v["search_latency"]["p50_ms"], 3),
            ]
        )
    return _table(header, rows)


def rerank_table(rerank: dict) -> str:
    header = ["system", "NDCG@10", "MRR@10", "P@10", "NDCG kept %", "p50 ms / query", "p99 ms / query"]
    rows = []
    for name, v in rerank.get("systems", {}).items():
        rows.append(
            [
                name,
                _fmt(v.get("ndcg@10")),
                _fmt(v.get("mrr@10")),
                _fmt(v.get("p@10")),
                _fmt(v.get("ndcg_recovery_%"), 1),
                _fmt(v.get("latency_p50_ms"), 1),
                _fmt(v.get("latency_p99_ms"), 1),
            ]
        )
    return _table(header, rows)


def render(run: RunDir) -> str:
    """The whole report as Markdown."""
    metrics, bench, timings, data = (
        run.read_json(n) for n in ("metrics.json", "bench.json", "timings.json", "data.json")
    )
    parts = [f"# harness-lm report: `{run.root.name}`", ""]
    if data:
        parts += [
            f"Catalog: {data['items']:,} items; judgments: {data['judgments']:,}; queries per split: "
            f"{data['queries']}; alignment pool: {data['query_pool']:,} queries.",
            "",
        ]
    parts += [f"Teacher: `{run.config.teacher.model}`; index: {run.config.index.kind}.", ""]
    if metrics:
        parts += [
            f"## Retrieval quality ({metrics['queries']:,} held-out queries, {metrics['judgments']})",
            "",
            quality_table(metrics),
            "",
            "Recovery is the share of the fine-tuned teacher's score that a system keeps.",
            "",
        ]
        drift = int8_drift(metrics)
        if drift:
            parts += [drift, ""]
        if "ann_recall" in metrics:
            ann = metrics["ann_recall"]
            parts += [
                f"ANN index ({ann['kind']}): " + ", ".join(f"{k} = {v:.4f}" for k, v in ann.items() if k != "kind"),
                "",
            ]
    if bench:
        threads = bench["threads"]
        parts += [
            f"## Query encoder speed ({bench['queries']} queries, batch 1 latency after warm-up, "
            f"torch threads = {threads.get('torch_num_threads')})",
            "",
            speed_table(bench),
            "",
        ]
    rerank = run.read_json("relevance.json").get("rerank")
    if rerank:
        parts += [
            f"## Re-ranking the {rerank['retriever']} top-{rerank['k']} ({rerank['queries']:,} held-out queries)",
            "",
            rerank_table(rerank),
            "",
            "Latency: one query's K candidates scored by the cross-encoder in one batch "
            f"(torch threads = {rerank['threads'].get('torch_num_threads')}); kept % is against the cross-encoder "
            "teacher.",
            "",
        ]
    if timings:
        parts += [
            "## Wall time per step",
            "",
            _table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]),
            "",
        ]
    return "\n".join(parts)


def write_report(run: RunDir) -> str:
    text = render(run)
    write_text(run.root / "report.md", text)
    return text

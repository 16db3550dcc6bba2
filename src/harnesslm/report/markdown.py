"""The run's Markdown report: quality and speed tables built from metrics.json, bench.json and timings.json."""

from __future__ import annotations

import math

from harnesslm.atomic import write_text
from harnesslm.evaluation.systems import RETRIEVER_ONLY as NO_RERANKER
from harnesslm.evaluation.systems import SystemId
from harnesslm.run.run_dir import RunDir

WORST_SHOWN = 10  # queries per student in "Where the students lose most"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _with_ci(value: float | None, ci: list[float] | None, digits: int = 4) -> str:
    """``0.3412 [0.3301, 0.3520]``, or the value alone when there is no interval (an older metrics.json)."""
    text = _fmt(value, digits)
    if not ci or text == "–":
        return text
    return f"{text} [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def _cosine(values: dict) -> str:
    """Mean cosine to the teacher's query embeddings / mean of the worst 10% of queries."""
    if "cosine_mean" not in values:
        return "–"
    return f"{_fmt(values['cosine_mean'], 3)} / {_fmt(values.get('cosine_worst_decile'), 3)}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def quality_table(metrics: dict) -> str:
    header = [
        "system",
        "role",
        "NDCG@10 [95% CI]",
        "Recall@100 [95% CI]",
        "P@10",
        "MRR@10",
        "NDCG kept % [95% CI]",
        "Recall kept % [95% CI]",
        "top-10 overlap",
        "cosine mean / worst 10%",
    ]
    rows = []
    for name, v in metrics.get("systems", {}).items():
        rows.append(
            [
                name,
                v["role"],
                _with_ci(v.get("ndcg@10"), v.get("ndcg@10_ci")),
                _with_ci(v.get("recall@100"), v.get("recall@100_ci")),
                _fmt(v.get("p@10")),
                _fmt(v.get("mrr@10")),
                _with_ci(v.get("ndcg_recovery_%"), v.get("ndcg_recovery_ci_%"), 1),
                _with_ci(v.get("recall_recovery_%"), v.get("recall_recovery_ci_%"), 1),
                _fmt(v.get("top10_overlap"), 3),
                _cosine(v),
            ]
        )
    return _table(header, rows)


def quality_notes(metrics: dict) -> str:
    """What the brackets, the overlap and the cosine of the quality table mean."""
    text = "Recovery (kept %) is the share of the fine-tuned teacher's score that a system keeps."
    boot = metrics.get("bootstrap")
    if boot:
        text += (
            f" Brackets: {100 * boot['confidence']:.0f}% confidence intervals from a paired bootstrap over the "
            f"queries ({boot['resamples']:,} resamples, seed {boot['seed']}); recovery is computed within each "
            "resample against the teacher on the same queries. Top-10 overlap: share of the teacher's top-10 items "
            "that a system also returns in its top 10. Cosine: of a student's query embedding to the teacher's, "
            "mean over the queries / mean over the worst 10%."
        )
    return text


def latest_phases(names: list[str]) -> dict[str, str]:
    """Student name -> its latest system name among ``names`` (``"static (refined)"`` over ``"static (aligned)"``)."""
    latest: dict[str, tuple[int, str]] = {}
    for system in names:
        sid = SystemId.parse(system)
        student = sid.name if sid.phase else system
        if student not in latest or sid.phase_rank >= latest[student][0]:
            latest[student] = (sid.phase_rank, system)
    return {student: system for student, (_, system) in latest.items()}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def worst_queries_section(metrics: dict, shown: int = WORST_SHOWN) -> list[str]:
    """Per student's latest phase, the test queries where it loses most NDCG@10 to the teacher."""
    worst = metrics.get("worst_queries", {})
    if not worst:
        return []
    parts = [
        "## Where the students lose most",
        "",
        f"For each student's latest phase, the {shown} held-out queries with the largest drop in NDCG@10 "
        "against the fine-tuned teacher.",
        "",
    ]
    for system in latest_phases(list(worst)).values():
        rows = [
            [_cell(row["query"]), _fmt(row["teacher_ndcg@10"]), _fmt(row["student_ndcg@10"])]
            for row in worst[system][:shown]
        ]
        parts += [f"### {system}", "", _table(["query", "teacher NDCG@10", "student NDCG@10"], rows), ""]
    return parts


def int8_drift(metrics: dict) -> str | None:
    """One line: NDCG@10 of each int8 ONNX export minus its float PyTorch student's, in points."""
    systems = metrics.get("systems", {})
    drifts = []
    for name, values in systems.items():
        sid = SystemId.parse(name)
        float_name = sid.as_trained.label  # "static (refined, onnx-int8)" -> "static (refined)"
        if sid.runtime == "onnx-int8" and float_name in systems:
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
        "p50 spread %",
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
                _fmt(v.get("p50_spread_%"), 0),
            ]
        )
    return _table(header, rows)


def machine_notes(bench: dict) -> list[str]:
    """How steady the machine was while timing, and a warning for each sign that it was not."""
    machine = bench.get("machine")
    if not machine:
        return []
    busy = [
        b
        for b in (machine.get("busy_cores_elsewhere_before"), machine.get("busy_cores_elsewhere_after"))
        if b is not None
    ]
    lines = []
    if busy:
        lines.append(
            f"Other processes kept {max(busy):.2f} cores busy around the timing; p50 spread is the (max - min) / min "
            "of the p50s of the repeated passes."
        )
    lines += [f"**Warning:** {w}" for w in machine.get("warnings", [])]
    return [*lines, ""] if lines else []


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


def regressions(metrics: dict, rerank: dict | None) -> list[str]:
    """Every stage that leaves test NDCG@10 lower than the stage before it, in words.

    Selection on validation keeps each phase from getting worse there; on the test queries a later phase can
    still lose, and a re-ranker trained on little data can rank worse than the retriever it re-ranks.
    """
    lines = []
    systems = metrics.get("systems", {})
    for name, v in systems.items():
        earlier = SystemId.parse(name).previous_phase
        previous = earlier.label if earlier else None
        if previous in systems and v.get("ndcg@10", 0.0) < systems[previous].get("ndcg@10", 0.0):
            lines.append(
                f"- {name}: NDCG@10 {v['ndcg@10']:.4f} is below {previous} ({systems[previous]['ndcg@10']:.4f})."
            )
    reranked = (rerank or {}).get("systems", {})
    alone = reranked.get(NO_RERANKER, {}).get("ndcg@10")
    for name, v in reranked.items():
        if name != NO_RERANKER and alone is not None and v.get("ndcg@10", 0.0) < alone:
            lines.append(
                f"- re-ranking with the {name}: NDCG@10 {v['ndcg@10']:.4f} is below the retriever alone "
                f"({alone:.4f}); it makes results worse."
            )
    if not lines:
        return []
    return [f"## Stages that made results worse ({_judged(metrics)})", "", *lines, ""]


def selection_section(selection: dict) -> list[str]:
    """What each training phase kept and why: validation NDCG@10 at its start and of the state it kept."""
    students = selection.get("students", {})
    if not students:
        return []
    rows = []
    for name, phases in students.items():
        for phase, kept in phases.items():
            if "validation_ndcg@10" not in kept:
                rows.append([name, phase, "–", "–", "last step (no validation split)"])
                continue
            rows.append(
                [
                    name,
                    phase,
                    _fmt(kept["validation_ndcg@10_start"]),
                    _fmt(kept["validation_ndcg@10"]),
                    kept["kept"],
                ]
            )
    parts = [
        "## What each phase kept, and why (validation queries)",
        "",
        _table(["student", "phase", "validation NDCG@10 at start", "kept", "kept state"], rows),
        "",
        "Every phase scores the validation queries during training and keeps its best state, its start included: "
        "a phase never leaves a student worse on validation than it found it. Test queries are never used here.",
        "",
    ]
    floor = selection.get("static_untrained_own_index_validation_ndcg@10")
    if floor is not None:
        parts += [f"Untrained static model on its own index, validation NDCG@10: {floor:.4f}.", ""]
    return parts


def pool_section(pool: dict) -> list[str]:
    """The alignment pool by source: texts offered and kept, and the seconds spent making and encoding them."""
    sources = pool.get("sources", {})
    if not sources:
        return []
    rows = [
        [name, f"{s['offered']:,}", f"{s['kept']:,}", f"{s['generate_s']:.1f}", f"{s['encode_s']:.1f}"]
        for name, s in sources.items()
    ]
    return [
        f"## Alignment pool ({pool['size']:,} texts)",
        "",
        _table(["source", "offered", "kept (new, not held out)", "generate s", "encode s"], rows),
        "",
    ]


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
            quality_notes(metrics),
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
            *machine_notes(bench),
        ]
    rerank = run.read_json("relevance.json").get("rerank")
    if rerank:
        parts += [
            f"## Re-ranking the {rerank['retriever']} top-{rerank['k']} ({rerank['queries']:,} held-out queries)",
            "",
            rerank_table(rerank),
            "",
            "Latency: one query's K candidates scored by the cross-encoder in one batch "
            f"(torch threads = {rerank['threads'].get('torch_num_threads')}). Kept % is against the cross-encoder "
            f"teacher, so the retriever's own order ({NO_RERANKER!r}) reads above 100% when the teacher "
            "re-ranks worse than it.",
            "",
        ]
    parts += regressions(metrics, rerank)
    parts += selection_section(run.read_json("selection.json"))
    parts += pool_section(run.read_json("pool.json"))
    parts += worst_queries_section(metrics)  # after the headline tables: it is the detail behind them
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


def terminal_summary(run: RunDir) -> list:
    """What the terminal shows after a run: the headline numbers in tables that fit 80 columns.

    The full report (every column, intervals on each metric, selection, pool, worst queries) is ``report.md``;
    rich would squeeze its ten-column tables into unreadable wrapped cells on a terminal.
    """
    from rich import box
    from rich.table import Table

    metrics, bench = run.read_json("metrics.json"), run.read_json("bench.json")
    out: list = []
    systems = metrics.get("systems", {})
    if systems:
        quality = Table(
            title=f"Quality on {metrics.get('queries', 0):,} {_judged(metrics)} (kept: % of the fine-tuned teacher)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for header in ("system", "NDCG@10", "kept % [95% CI]", "R@100 kept", "top-10"):
            quality.add_column(header, justify="left" if header == "system" else "right", no_wrap=True)
        for name, v in systems.items():
            ci = v.get("ndcg_recovery_ci_%")
            kept = _fmt(v.get("ndcg_recovery_%"), 1) + (f" [{ci[0]:.0f},{ci[1]:.0f}]" if ci else "")
            quality.add_row(
                _clip(name, 26),
                _fmt(v.get("ndcg@10")),
                kept,
                _fmt(v.get("recall_recovery_%"), 1),
                _fmt(v.get("top10_overlap"), 2),
            )
        out.append(quality)
    encoders = bench.get("encoders", {})
    if encoders:
        speed = Table(title="Batch-1 query encoding", title_justify="left", box=box.SIMPLE_HEAD)
        for header in ("encoder", "p50 ms", "p99 ms", "speed-up", "queries/s"):
            speed.add_column(header, justify="left" if header == "encoder" else "right", no_wrap=True)
        for name, v in encoders.items():
            lat = v["latency"]
            speed.add_row(
                _clip(name, 34),
                _fmt(lat["p50_ms"], 2),
                _fmt(lat["p99_ms"], 2),
                f"{v['latency_speedup_p50']:.1f}x",
                f"{v['queries_per_s']:,.0f}",
            )
        out.append(speed)
    notes = regressions(metrics, run.read_json("relevance.json").get("rerank"))[2:]
    notes += [f"- warning: {w}" for w in bench.get("machine", {}).get("warnings", [])]
    out += [line for line in notes if line]
    return out


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _judged(metrics: dict) -> str:
    """What the figures were scored on: the run's test queries, or the judged file given to ``evaluate``."""
    source = metrics.get("judgments", "test split")
    return "test queries" if source == "test split" else f"queries judged in {source}"

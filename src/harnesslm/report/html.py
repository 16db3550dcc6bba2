"""``harness report --html``: the run's headline figures as one self-contained HTML file with plots.

Three plots, drawn with matplotlib and inlined as SVG (the file opens offline, with nothing to fetch):

- quality kept: each student's (and hybrid's) NDCG@10 and Recall@100 recovery against the teacher, with the
  paired-bootstrap 95% confidence interval, per phase;
- batch-1 latency: the distribution of each encoder's per-query latency (``bench.json``'s percentiles);
- the served path: p50 and p99 latency and throughput against concurrent clients (a ``load_test.json``
  written by ``benchmarks/load_test.py``), when one is given or found in the run directory.

The Markdown report (``report.md``) keeps every table; this page is the picture of it.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path
from typing import Any

from harnesslm import extras
from harnesslm.atomic import write_text
from harnesslm.run.run_dir import RunDir

HTML_REPORT = "report.html"
LOAD_TEST = "load_test.json"
"""Where :func:`write_html_report` looks for a load test in the run directory when none is given."""


def write_html_report(run: RunDir, load_test: Path | None = None) -> Path:
    """Write ``RUN/report.html`` from metrics.json, bench.json and a load test; return its path."""
    extras.require("report", "harness report --html")
    import matplotlib

    matplotlib.use("Agg")  # no display: draw to files only
    metrics, bench = run.read_json("metrics.json"), run.read_json("bench.json")
    load_path = load_test or (run.root / LOAD_TEST)
    load = json.loads(load_path.read_text(encoding="utf-8")) if load_path.exists() else {}
    if load_test is not None and not load:
        raise FileNotFoundError(f"no load test in {load_test}")
    sections = [f"<h1>harness-lm report: <code>{html.escape(run.root.name)}</code></h1>"]
    sections.append(
        f"<p>Teacher <code>{html.escape(run.config.teacher.model)}</code>; index {run.config.index.kind}. "
        "Every table is in <code>report.md</code>; the plots below are drawn from the same files.</p>"
    )
    if metrics:
        sections += [
            f"<h2>Quality kept ({metrics.get('queries', 0):,} held-out queries)</h2>",
            _quality_rows(metrics),
            _svg(recovery_figure(metrics)),
        ]
    if bench:
        sections += ["<h2>Batch-1 query latency</h2>", _svg(latency_figure(bench))]
    if load:
        sections += [
            f"<h2>Served search under load ({html.escape(str(load.get('settings', {}).get('endpoint', '')))})</h2>",
            _svg(load_figure(load)),
        ]
    page = _PAGE.format(title=html.escape(f"harness-lm report: {run.root.name}"), body="\n".join(sections))
    out = run.root / HTML_REPORT
    write_text(out, page)
    return out


# plots -------------------------------------------------------------------------------------------------------
def recovery_figure(metrics: dict) -> Any:
    """NDCG@10 and Recall@100 kept (% of the teacher) with 95% CIs, one row per student phase or hybrid."""
    import matplotlib.pyplot as plt

    rows = [
        (name, values)
        for name, values in metrics.get("systems", {}).items()
        if values.get("role") in ("student", "hybrid") and "ndcg_recovery_%" in values
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * max(len(rows), 2) + 1.4), sharey=True)
    for ax, (metric, title) in zip(axes, (("ndcg", "NDCG@10 kept %"), ("recall", "Recall@100 kept %")), strict=True):
        for y, (_, values) in enumerate(rows):
            value = values[f"{metric}_recovery_%"]
            low, high = values.get(f"{metric}_recovery_ci_%") or (value, value)
            ax.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="o", capsize=4, color="#1f5f99")
            ax.annotate(f"{value:.1f}", (value, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
        ax.axvline(100, color="#444", lw=1)
        ax.axvline(98, color="#c0392b", lw=1, ls="--", label="98% (the paper's claim)")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [name for name, _ in rows])
    axes[0].invert_yaxis()
    axes[1].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def latency_figure(bench: dict) -> Any:
    """Each encoder's batch-1 latency distribution (CDF from its 1st-99th percentiles), log-scaled."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, values in bench.get("encoders", {}).items():
        latency = values["latency"]
        points = latency.get("percentiles_ms") or [latency["p50_ms"], latency["p95_ms"], latency["p99_ms"]]
        levels = range(1, 100) if latency.get("percentiles_ms") else (50, 95, 99)
        ax.plot(points, list(levels), marker="" if latency.get("percentiles_ms") else "o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("ms per query (batch 1, log scale)")
    ax.set_ylabel("percentile")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def load_figure(load: dict) -> Any:
    """p50 / p99 latency and throughput against concurrent clients, per served encoder."""
    import matplotlib.pyplot as plt

    fig, (latency_ax, rps_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, outcome in load.get("encoders", {}).items():
        # the first pass over the client counts (with --repeats, the load test measures each count several times)
        levels = [
            level for level in outcome.get("levels", []) if level.get("p50_ms") is not None and not level.get("repeat")
        ]
        if not levels:
            continue
        clients = [level["concurrency"] for level in levels]
        (line,) = latency_ax.plot(clients, [level["p50_ms"] for level in levels], marker="o", label=f"{name} p50")
        latency_ax.plot(
            clients, [level["p99_ms"] for level in levels], marker="^", ls="--", color=line.get_color(), label="p99"
        )
        rps_ax.plot(clients, [level["rps"] for level in levels], marker="o", color=line.get_color(), label=name)
    for ax in (latency_ax, rps_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3, which="both")
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel("ms per request (log scale)")
    rps_ax.set_ylabel("requests / s")
    latency_ax.legend(fontsize=7, ncols=2)
    rps_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# page --------------------------------------------------------------------------------------------------------
def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: smaller, selectable
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    return f"<figure>{svg[svg.index('<svg') :]}</figure>"


def _quality_rows(metrics: dict) -> str:
    cells = ["<table><tr><th>system</th><th>role</th><th>NDCG@10 [95% CI]</th><th>Recall@100 [95% CI]</th>"]
    cells[0] += "<th>NDCG kept % [95% CI]</th></tr>"
    for name, values in metrics.get("systems", {}).items():
        cells.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(values.get('role', ''))}</td>"
            f"<td>{_ci(values.get('ndcg@10'), values.get('ndcg@10_ci'))}</td>"
            f"<td>{_ci(values.get('recall@100'), values.get('recall@100_ci'))}</td>"
            f"<td>{_ci(values.get('ndcg_recovery_%'), values.get('ndcg_recovery_ci_%'), 1)}</td></tr>"
        )
    return "\n".join([*cells, "</table>"])


def _ci(value: float | None, bounds: list[float] | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]" if bounds else text


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1d232a; }}
  table {{ border-collapse: collapse; margin: .6rem 0 1rem; }}
  th, td {{ border: 1px solid #d6dce2; padding: .25rem .5rem; text-align: right; }}
  th:first-child, td:first-child, td:nth-child(2) {{ text-align: left; }}
  figure {{ margin: .5rem 0 1.5rem; }}
  figure svg {{ max-width: 100%; height: auto; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""

"""The model card of an exported asymmetric model: what it was trained on, what it keeps, how fast, whose licence.

sentence-transformers writes a card for models it trained itself; the asymmetric export is assembled from a
student and a teacher trained in separate steps, so its card is written here from the run's own records
(``data.json``, ``metrics.json``, ``bench.json``), in the Hugging Face card format (YAML front matter, then
Markdown) so the hub and ``huggingface_hub.ModelCard`` read it.
"""

from __future__ import annotations

from harnesslm.evaluation.systems import SystemId
from harnesslm.run.run_dir import RunDir

LICENCES = {
    "embeddinggemma": ("other", "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"),
    "gemma": ("other", "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"),
    "all-minilm-l6-v2": ("apache-2.0", "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)"),
    "all-mpnet-base-v2": ("apache-2.0", "Apache-2.0 (sentence-transformers/all-mpnet-base-v2)"),
}
"""Known teachers' licences by a name fragment: (hub licence id, what the card says)."""


def teacher_licence(model: str) -> tuple[str, str]:
    """The licence a model derived from ``model`` (a teacher's name or path) carries, as far as it is known."""
    name = model.lower()
    for fragment, licence in LICENCES.items():
        if fragment in name:
            return licence
    return "other", f"the licence of {model} (not known to harness-lm: check it before you ship this model)"


def _cell(value: float | None, ci: list[float] | None = None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def model_card(run: RunDir, student: str, phase: str, teacher_space: str) -> str:
    """The card's text for ``student`` (``phase``) routed with the run's teacher."""
    teacher = run.config.teacher.model
    licence_id, licence = teacher_licence(teacher)
    label = SystemId(student, phase).label
    metrics = run.read_json("metrics.json").get("systems", {})
    bench = run.read_json("bench.json").get("encoders", {})
    data = run.read_json("data.json")
    lines = [
        "---",
        "library_name: sentence-transformers",
        f"license: {licence_id}",
        "pipeline_tag: sentence-similarity",
        "tags: [sentence-transformers, feature-extraction, harness-lm, distillation, asymmetric]",
        "---",
        "",
        f"# {run.root.name}: {student} queries, teacher documents",
        "",
        "An asymmetric retrieval model made by [harness-lm](https://github.com/harness-lm): `encode_query` runs "
        f"the small student `{student}` ({phase}), trained to embed queries into the teacher's space; "
        f"`encode_document` runs the teacher (`{teacher}`), which built the item index. The teacher's existing "
        "item embeddings stay valid: nothing needs re-indexing.",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("path/to/this/folder")',
        'queries = model.encode_query(["cordless drill 20v"])     # the fast student',
        'items = model.encode_document(["20V MAX Cordless Drill"])  # the teacher, in the index\'s space',
        "```",
        "",
        "## Training data",
        "",
    ]
    lines.append(training_data(data, run.read_json("pool.json")))
    lines += ["", "## Quality on held-out queries", ""]
    rows = [(name, values) for name, values in metrics.items() if name in ("teacher (fine-tuned)", label, "BM25")]
    if rows:
        lines += [
            "| system | NDCG@10 [95% CI] | Recall@100 [95% CI] | NDCG@10 kept % [95% CI] |",
            "|---|---|---|---|",
        ]
        for name, v in rows:
            kept = _cell(v.get("ndcg_recovery_%"), v.get("ndcg_recovery_ci_%"), 1) if name == label else "-"
            lines.append(
                f"| {name} | {_cell(v.get('ndcg@10'), v.get('ndcg@10_ci'))} | "
                f"{_cell(v.get('recall@100'), v.get('recall@100_ci'))} | {kept} |"
            )
        lines.append("")
        lines.append(judged_on(run.read_json("metrics.json")))
    else:
        lines.append("(the run was not evaluated: `harness evaluate` fills this table)")
    lines += ["", "## Query latency (batch 1)", ""]
    speeds = [(name, v) for name, v in bench.items() if name in ("teacher", label)]
    if speeds:
        lines += ["| encoder | p50 ms | p99 ms | queries/s |", "|---|---|---|---|"]
        for name, v in speeds:
            lat = v["latency"]
            lines.append(f"| {name} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | {v['queries_per_s']:,.0f} |")
    else:
        lines.append("(the run was not benchmarked: `harness bench` fills this table)")
    lines += [
        "",
        "## Teacher and licence",
        "",
        f"- Teacher: `{teacher}`, fine-tuned in the run; its space fingerprint is `{teacher_space}` (the item "
        "index must carry the same one).",
        f"- Licence: {licence}. The student is derived from the teacher's embeddings, so the teacher's terms apply.",
    ]
    base = next((s.base for s in run.config.students if s.name == student), None)  # both kinds have one
    if base:
        lines.append(
            f"- The student was made from `{base}` (its table or layers), then trained into the teacher's space; "
            f"its licence, {teacher_licence(base)[1]}, applies too."
        )
    lines.append("")
    return "\n".join(lines)


def training_data(data: dict, pool: dict) -> str:
    """The card's data summary from the run's ``data.json`` and ``pool.json`` (what alignment trained on, by
    source: the prepared query pool alone leaves out the catalog texts and pseudo-queries added at ``align``)."""
    if not data:
        return "(the run records no data summary)"
    text = (
        f"Catalog of {data.get('items', 0):,} items; {data.get('judgments', 0):,} judged query-item pairs; "
        f"queries {', '.join(f'{n:,} {split}' for split, n in data.get('queries', {}).items())}; "
    )
    sources = {name: s["kept"] for name, s in pool.get("sources", {}).items() if s.get("kept")}
    if "size" in pool:
        parts = ", ".join(f"{name.replace('_', ' ')} {kept:,}" for name, kept in sources.items())
        return text + f"alignment pool of {pool['size']:,} texts" + (f" ({parts})." if parts else ".")
    return text + f"alignment pool of {data.get('query_pool', 0):,} queries."


def judged_on(metrics: dict) -> str:
    """Which judgments the figures were computed on, in words: the run's own test split (no choice was made on
    it), or the file given to ``harness evaluate --judgments``."""
    queries = metrics.get("queries", 0)
    source = metrics.get("judgments", "test split")
    if source == "test split":
        return f"On the run's {queries:,} test queries, on which no choice was made."
    return f"On {queries:,} queries judged in {source} (given to `harness evaluate --judgments`)."

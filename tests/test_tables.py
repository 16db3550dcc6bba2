"""The Markdown tables of README.md and docs/results.md are what benchmarks/tables.py makes of the results files."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import tables
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return tables


def test_the_committed_tables_are_current() -> None:
    tables = _tables()
    for path in tables.DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        assert tables.render(text) == text, f"{path.name}: run python benchmarks/tables.py"


def test_every_marker_names_a_known_table() -> None:
    tables = _tables()
    for path in tables.DOCUMENTS:
        names = [m.group("name") for m in tables.MARKER.finditer(path.read_text(encoding="utf-8"))]
        assert names and set(names) <= set(tables.TABLES), path.name


def test_a_table_is_rewritten_between_its_markers_only() -> None:
    tables = _tables()
    text = "before\n<!-- table:recipe-time -->\nstale\n<!-- /table:recipe-time -->\nafter\n"
    out = tables.render(text)
    assert out.startswith("before\n<!-- table:recipe-time -->\n") and out.endswith(
        "<!-- /table:recipe-time -->\nafter\n"
    )
    assert "stale" not in out

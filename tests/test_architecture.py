"""The package's shape: imports between its folders flow one way, and importing it is light.

The graph is read from the source (every ``import harnesslm...``, also inside functions), folder to folder.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import harnesslm

PACKAGE = Path(harnesslm.__file__).parent
LOWER = ("serving", "onnx", "index", "encoding")
"""Folders that must work without a run directory: a service, an index or an encoder is given its inputs."""
LAYOUT = ("pipeline", "run", "cli", "report")
"""Folders that know where a run keeps its files (``cli`` drives ``pipeline``; ``report`` reads a run's JSON)."""


def folder_graph() -> dict[str, set[str]]:
    """Folder (or top-level module) -> the other folders/modules of the package it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        source = parts[0] if len(parts) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.module != "harnesslm" else [f"harnesslm.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                pieces = name.split(".")
                if pieces[0] == "harnesslm" and len(pieces) > 1 and pieces[1] != source:
                    edges[source].add(pieces[1])
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (empty when the graph is a DAG)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_graph_sees_real_imports() -> None:
    edges = folder_graph()
    assert "run" in edges["pipeline"] and "serving" in edges["pipeline"]  # the check is not vacuous


def test_serving_index_onnx_and_encoding_never_reach_up_to_the_run_directory() -> None:
    edges = folder_graph()
    wrong = {f"{low} -> {up}" for low in LOWER for up in LAYOUT if up in edges.get(low, set())}
    assert not wrong


def test_only_the_layout_folders_import_the_run_directory() -> None:
    importers = {source for source, targets in folder_graph().items() if "run" in targets}
    assert importers <= {*LAYOUT, "__init__"}


def test_no_two_modules_share_a_file_name() -> None:
    """A module's name says what it holds, so a reader never confuses ``serving/app.py`` with ``cli/app.py``."""
    folders = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            folders[path.name].append(str(path.parent.relative_to(PACKAGE)))
    assert {name: where for name, where in folders.items() if len(where) > 1} == {}


def test_no_import_cycle_between_folders() -> None:
    assert cycles(folder_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys; {statement}; print([m for m in {modules!r} if m in sys.modules])"
    return ast.literal_eval(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )


def test_importing_the_package_is_light() -> None:
    heavy = ("torch", "pandas", "faiss", "sentence_transformers", "harnesslm.pipeline")
    assert _loaded_after("import harnesslm, harnesslm.config", heavy) == []


def test_the_report_loads_neither_torch_nor_the_cross_encoder() -> None:
    """``harness report`` reads JSON files: the Markdown and HTML reports and the model card import no model code."""
    modules = "harnesslm.report.markdown, harnesslm.report.html, harnesslm.report.model_card"
    heavy = ("torch", "sentence_transformers", "faiss", "harnesslm.rerank", "harnesslm.pipeline.relevance")
    assert _loaded_after(f"import {modules}", heavy) == []


def test_importing_the_losses_does_not_pull_in_the_recipe() -> None:
    """Losses need torch and sentence-transformers, not the trainer, FAISS, the data loaders or the recipe."""
    recipe = ("faiss", "harnesslm.training.trainer", "harnesslm.pipeline", "harnesslm.index", "harnesslm.data")
    assert _loaded_after("import harnesslm.losses", recipe) == []

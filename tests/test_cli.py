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

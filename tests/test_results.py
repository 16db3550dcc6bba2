"""Every results file says how to get it back: the script that wrote it (which must exist), the command, the
commit, the date, the machine and the load. Files written before provenance records are archived apart."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
REQUIRED = ("writer", "command", "commit", "date", "machine", "load_before", "load_after", "splits")


def test_no_figure_in_the_guides_comes_from_the_archive() -> None:
    assert (ROOT / "benchmarks" / "results" / "archive" / "README.md").exists()
    for guide in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        if guide.name != "history.md":  # the old notebook, kept as history
            assert not re.search(r"results/archive/[\w{},*]+\.json", guide.read_text(encoding="utf-8")), guide.name


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_a_results_file_carries_its_provenance(path: Path) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    provenance = payload.get("provenance")
    assert isinstance(provenance, dict), f"{path.name} has no provenance block"
    missing = [key for key in REQUIRED if key not in provenance]
    assert not missing, f"{path.name}: provenance lacks {missing}"
    writer = ROOT / provenance["writer"]
    assert writer.is_file() and writer.parent == ROOT / "benchmarks", f"{path.name}: no writer {writer}"
    assert shlex.split(provenance["command"])[:2] == ["python", provenance["writer"]]
    assert len(provenance["commit"]) == 40 and provenance["machine"]["cores"] >= 1


def test_the_provenance_writer_records_the_machine_and_the_command(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from results_json import ResultsFile
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    record = ResultsFile.start(str(ROOT / "benchmarks" / "peers.py"), ["--run", "runs/x", "--name", "y"])
    path = record.save(tmp_path / "peers_y.json", {"rows": {"a": 1.0}}, {"validation": 811})
    payload = json.loads(path.read_text())
    assert payload["rows"] == {"a": 1.0}
    provenance = payload["provenance"]
    assert provenance["command"] == "python benchmarks/peers.py --run runs/x --name y"
    assert provenance["splits"] == {"validation": 811} and len(provenance["load_before"]) == 3
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary file left

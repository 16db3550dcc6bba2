"""Writing a results JSON with its provenance: what wrote it, from which code, on which machine, under what load.

Every benchmark saves its figures through :class:`ResultsFile`, so each file under ``benchmarks/results/`` says
how to get it back: the command line, the writer script, the commit (and whether the tree had uncommitted
changes), the date, the machine (CPU model, cores, GPU) and the load average before and after the work.

    record = ResultsFile.start(__file__)          # first thing in main(): the load before
    ...                                           # the benchmark's work
    record.save(path, figures, splits={"validation": 811})
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROVENANCE_KEYS = ("writer", "command", "commit", "dirty", "date", "machine", "load_before", "load_after")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # no torch, or a broken driver: a results file is still written
        return None


def machine() -> dict[str, Any]:
    """The CPU model, its cores (and those this process may use), memory and GPU."""
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib,
        "gpu": _gpu(),
        "python": platform.python_version(),
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class ResultsFile:
    """The provenance of one benchmark invocation, started when the work starts and saved with its figures."""

    writer: str
    command: str
    load_before: list[float]
    started: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, script: str, argv: list[str] | None = None) -> ResultsFile:
        argv = sys.argv[1:] if argv is None else argv
        writer = Path(script).resolve().relative_to(ROOT).as_posix()
        command = shlex.join(["python", writer, *argv])
        return cls(writer, command, _load(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def provenance(self, splits: dict[str, int] | None = None) -> dict[str, Any]:
        """The block saved under ``provenance``: ``splits`` names each split scored and its query count."""
        return {
            "writer": self.writer,
            "command": self.command,
            "commit": _git("rev-parse", "HEAD"),
            "dirty": bool(
                _git("status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks", ":!benchmarks/results")
            ),
            "date": self.started,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "load_before": self.load_before,
            "load_after": _load(),
            "splits": splits or {},
            **self.extra,
        }

    def save(self, path: Path, figures: dict[str, Any], splits: dict[str, int] | None = None) -> Path:
        """Write ``figures`` with the provenance block to ``path`` atomically (a crash leaves the old file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"provenance": self.provenance(splits), **figures}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def refuse_second_final(path: Path, rescore: bool) -> int:
    """Guard a benchmark's test stage: the test split is scored once per result. When ``path`` already holds
    final figures from the current commit, refuse (``SystemExit``) unless ``rescore``; returns how many times
    this commit's test figures were scored before (recorded in the new file as ``rescored``)."""
    path = Path(path)
    if not path.exists():
        return 0
    previous = json.loads(path.read_text(encoding="utf-8")).get("provenance", {})
    if previous.get("commit") != _git("rev-parse", "HEAD") or previous.get("dirty"):
        return 0
    if not rescore:
        raise SystemExit(
            f"{path} already holds test figures of commit {previous['commit'][:12]}: the test split is scored "
            "once per result. Pass --rescore to score it again (the file will say so)."
        )
    return int(previous.get("rescored", 0)) + 1

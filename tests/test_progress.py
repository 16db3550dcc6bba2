"""Progress where the output is a log: timed lines with the rate and the expected finish, not a silent bar."""

from __future__ import annotations

import re

import pytest

from harnesslm.progress import ProgressLines, progress


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_every_30_seconds_with_rate_and_time_left() -> None:
    clock, lines = _Clock(), []
    meter = ProgressLines("catalog pass", 1000, unit="titles", clock=clock, write=lines.append)
    for _ in range(9):  # 100 titles every 10 s: a line at 30 s, 60 s and 90 s
        clock.now += 10
        meter.advance(100)
    meter.close()
    assert lines[0] == "catalog pass: 1,000 titles"
    assert len(lines) == 5  # the start, three timed lines, the end
    assert re.fullmatch(
        r"catalog pass: 300/1,000 titles \(30%\), 10\.0 titles/s, ~70 s left \(about \d\d:\d\d\)", lines[1]
    )
    assert lines[-1] == "catalog pass: 900/1,000 titles in 90 s"


def test_a_resumed_pass_counts_its_rate_from_what_it_did_now() -> None:
    clock, lines = _Clock(), []
    meter = ProgressLines("shards", 10, unit="shards", completed=6, clock=clock, write=lines.append, every=0)
    clock.now = 60
    meter.advance(2)
    assert lines[0] == "shards: 10 shards, 6 done before"
    assert "8/10 shards (80%), 2.0 shards/min, ~60 s left" in lines[1]


def test_progress_writes_lines_to_stderr_when_it_is_not_a_terminal(capsys: pytest.CaptureFixture) -> None:
    with progress("encoding", 3) as advance:
        advance(3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "encoding: 3 texts" and err[-1].startswith("encoding: 3/3 texts in ")


def test_disabled_progress_writes_nothing(capsys: pytest.CaptureFixture) -> None:
    with progress("encoding", 3, enabled=False) as advance:
        advance(3)
    assert capsys.readouterr().err == ""

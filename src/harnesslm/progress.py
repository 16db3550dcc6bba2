"""Progress a person can follow wherever the output goes: a bar in a terminal, and where the output is a file
(CI, ``nohup``, a job scheduler) a line when long work starts, at least every 30 seconds while it runs, and
when it ends, each with the rate and the expected finish.

rich's bars draw nothing when the output is not a terminal (they redraw one line in place), and tqdm writes
carriage returns into the file; a run on a scheduler then showed nothing for the 17 minutes its teacher mined
negatives and trained. This module gives every long loop of the toolkit the same two faces.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

LOG_EVERY_S = 30.0
"""Seconds between progress lines when the output is not a terminal."""


def interactive() -> bool:
    """Whether progress can be drawn as a bar (standard error is a terminal)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLines:
    """Counts work done and writes a line at most every ``every`` seconds: done/total, rate, time left."""

    def __init__(
        self,
        description: str,
        total: int,
        unit: str = "texts",
        completed: int = 0,
        every: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = self.start_done = completed
        self.every, self.clock = every, clock
        self.write = write or _write
        self.started = self.last = clock()
        self.write(f"{description}: {total:,} {unit}" + (f", {completed:,} done before" if completed else ""))

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            self.write(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self.start_done) / elapsed
        share = 100 * self.done / self.total if self.total else 100.0
        speed = f"{rate:,.1f} {self.unit}/s" if rate >= 1 else f"{60 * rate:,.1f} {self.unit}/min"
        text = f"{self.description}: {self.done:,}/{self.total:,} {self.unit} ({share:.0f}%), {speed}"
        if rate > 0 and self.done < self.total:
            left = (self.total - self.done) / rate
            finish = dt.datetime.now() + dt.timedelta(seconds=left)
            text += f", ~{_duration(left)} left (about {finish:%H:%M})"
        return text

    def close(self) -> None:
        took = self.clock() - self.started
        self.write(f"{self.description}: {self.done:,}/{self.total:,} {self.unit} in {_duration(took)}")


def _write(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
    logger.info(text)


@contextmanager
def progress(
    description: str, total: int, enabled: bool = True, unit: str = "texts", completed: int = 0
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``: a transient bar in a terminal, timed lines otherwise, nothing when disabled."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    if interactive():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"{description} ({total:,} {unit})", total=total, completed=completed)
            yield lambda n=1: bar.advance(task, n)
        return
    lines = ProgressLines(description, total, unit, completed)
    yield lines.advance
    lines.close()

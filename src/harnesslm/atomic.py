"""Crash-safe writes: build in a temporary sibling, then rename into place.

A step that dies half-way leaves only a hidden ``.name.*`` leftover, never a half-written model, index or
metrics file that a later step would trust.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TEMP_SUFFIX = r"[a-z0-9_]{8}"  # what tempfile.mkdtemp / mkstemp put after the prefix


def _umask() -> int:
    """The process umask (``os.umask`` can only be read by setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temps(target: Path) -> list[Path]:
    """Delete what an earlier crashed write of ``target`` left next to it; returns what was removed.

    Only names this module creates for ``target`` match: ``.NAME.XXXXXXXX`` (a folder being built),
    ``.NAME.old`` (a folder being replaced) and ``.NAME.XXXXXXXX.tmp`` (a file being written).
    """
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:{TEMP_SUFFIX}|old|{TEMP_SUFFIX}\.tmp)")
    removed = []
    if not target.parent.is_dir():
        return removed
    for sibling in target.parent.iterdir():
        if pattern.fullmatch(sibling.name):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)
            removed.append(sibling)
    return removed


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; on success it replaces ``target``.

    Leftovers of an earlier crashed write of ``target`` are removed first. The folder gets the permissions an
    ordinary ``mkdir`` would (the umask), not ``mkdtemp``'s private 0700, so a serving account can read it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(source: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        source.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        source.rename(target)


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator:
    """Open a temporary file next to ``path``; on success it is renamed to ``path`` (stale temps removed first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an ordinary file write honours the umask
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as handle:
        np.save(handle, array)

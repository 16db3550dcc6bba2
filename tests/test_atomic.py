"""Crash-safe writes: a folder or file appears (or is replaced) only when its body finished."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from harnesslm.atomic import atomic_directory, atomic_file, save_array, write_text


class _BoomError(Exception):
    pass


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_directory_creates_target(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "model"
    with atomic_directory(target) as tmp:
        assert tmp != target and tmp.parent == target.parent and tmp.is_dir()
        assert not target.exists()  # nothing visible while the body runs
        (tmp / "weights.bin").write_bytes(b"new")
    assert (target / "weights.bin").read_bytes() == b"new"
    assert _listing(target.parent) == ["model"]


def test_atomic_directory_replaces_existing_on_success(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    (target / "shared.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "shared.txt").write_text("new")
        # the old content is still readable until the body is done
        assert (target / "old.txt").read_text() == "old"
    assert _listing(target) == ["shared.txt"]  # replaced, not merged
    assert (target / "shared.txt").read_text() == "new"
    assert _listing(tmp_path) == ["model"]  # neither the temp folder nor the ".old" one is left


def test_atomic_directory_keeps_old_folder_when_body_raises(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(_BoomError), atomic_directory(target) as tmp:
        (tmp / "half-written.bin").write_bytes(b"partial")
        raise _BoomError
    assert _listing(target) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert _listing(tmp_path) == ["model"]


def test_atomic_directory_creates_nothing_when_body_raises(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(_BoomError), atomic_directory(target) as tmp:
        (tmp / "x").write_text("x")
        raise _BoomError
    assert not target.exists()
    assert _listing(tmp_path) == []


def test_atomic_file_text_and_binary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "metrics.json"
    with atomic_file(path) as handle:
        handle.write('{"ndcg": 0.5} — ü')
        assert not path.exists()
    assert path.read_text(encoding="utf-8") == '{"ndcg": 0.5} — ü'
    with atomic_file(path, "wb") as handle:
        handle.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert _listing(path.parent) == ["metrics.json"]


def test_atomic_file_keeps_old_file_when_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(_BoomError), atomic_file(path) as handle:
        handle.write("half")
        raise _BoomError
    assert path.read_text() == "old"
    assert _listing(tmp_path) == ["metrics.json"]  # no ".metrics.json.*.tmp" left behind

    fresh = tmp_path / "fresh.txt"
    with pytest.raises(_BoomError), atomic_file(fresh) as handle:
        handle.write("half")
        raise _BoomError
    assert not fresh.exists()
    assert _listing(tmp_path) == ["metrics.json"]


def test_write_text_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    write_text(path, "one")
    write_text(path, "two")
    assert path.read_text(encoding="utf-8") == "two"
    assert _listing(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_save_array_round_trip(tmp_path: Path, dtype: type) -> None:
    array = np.random.default_rng(0).normal(size=(7, 5)).astype(dtype)
    path = tmp_path / "emb.npy"
    save_array(path, array)
    loaded = np.load(path)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert _listing(tmp_path) == ["emb.npy"]


def test_outputs_honour_the_umask_not_mkdtemp_privacy(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "model") as folder:
            (folder / "weights.bin").write_bytes(b"x")
        write_text(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755, "readable by a serving account"
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644


def test_a_crashed_write_leaves_nothing_after_the_next_one(tmp_path: Path) -> None:
    crashed_dir = tmp_path / ".aligned.k2j_9xq1"  # what a killed `align` leaves behind
    crashed_dir.mkdir()
    (crashed_dir / "model.safetensors").write_bytes(b"0" * 1000)
    (tmp_path / ".aligned.old").mkdir()
    (tmp_path / ".metrics.json.ab12cd34.tmp").write_text("{")
    unrelated = [tmp_path / ".aligned_notes", tmp_path / ".index.faiss.ab12cd34.tmp"]
    for path in unrelated:
        path.write_text("keep")
    with atomic_directory(tmp_path / "aligned") as folder:
        (folder / "x").write_text("new")
    write_text(tmp_path / "metrics.json", "{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["aligned", "metrics.json", *(p.name for p in unrelated)])

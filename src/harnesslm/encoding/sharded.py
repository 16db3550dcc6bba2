"""Encode a large catalog in shards, on several local processes or a Ray cluster, resumably.

Encoding millions of items with a large teacher is the longest step of the recipe. Here the catalog is cut
into fixed-size shards; each finished shard is written as ``shard-00000.npy`` (to a temporary name, then
renamed), next to a ``manifest.json`` naming the model and texts fingerprints, so a crashed or interrupted run
starts again where it stopped, and shards made by another model are never mixed in.

Local processes use the ``spawn`` start method (safe with torch and tokenizers threads); each worker loads the
model once and uses ``cores // workers`` torch threads. ``executor="ray"`` runs one actor per worker on a
Ray cluster (``pip install 'harness-lm[ray]'``; ``ray.init(address=...)``, or ``RAY_ADDRESS``); the workers
send their embeddings back, and only this process writes shards.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sentence_transformers import SentenceTransformer

from harnesslm import extras
from harnesslm.atomic import save_array, write_text
from harnesslm.encoding.cache import cache_path, encode, read_cache
from harnesslm.models.fingerprint import model_fingerprint, texts_fingerprint
from harnesslm.models.model_loading import load_model
from harnesslm.models.prompts import Role
from harnesslm.progress import progress as progress_lines

logger = logging.getLogger(__name__)

Executor = Literal["process", "ray"]
MANIFEST = "manifest.json"
MODEL_COPY = ".model"  # an in-memory model saved for the worker processes; removed at the end
RAY_RESTARTS = 3
"""How often a Ray encoder actor is started again after it dies, its shard retried each time."""
RAY_ACTOR_PREFIX = "harnesslm-encoder-"


class ShardManifestError(RuntimeError):
    """The shard folder holds shards of other texts, another model or other settings."""


def shard_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"shard-{index:05d}.npy"


def encode_sharded(
    model_path_or_name: str | Path | SentenceTransformer,
    texts: Sequence[str],
    out_dir: Path,
    shard_size: int = 10_000,
    workers: int = 2,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    executor: Executor = "process",
    *,
    fingerprint: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
    ray_address: str | None = None,
    role: Role = "document",
) -> np.ndarray:
    """Embeddings of ``texts`` (float32, L2-normalised, in order), encoded shard by shard into ``out_dir``.
    ``role`` picks the model's document prompt (a catalog, the default) or its query prompt.

    Shards already in ``out_dir`` and valid (right row count, readable) are kept, so calling this again after
    a crash only encodes what is missing. ``fingerprint`` (the model's, from ``model_fingerprint``) saves
    loading the model here just to hash it. When ``out_dir`` holds another model's or other texts' shards
    this raises :class:`ShardManifestError`, or with ``overwrite`` deletes them and starts over.

    ``workers=1`` encodes in this process; more use a process pool (or Ray actors with ``executor="ray"``).
    A loaded model is used as is (its own ``max_seq_length``); a path or hub id is loaded with
    ``max_seq_length`` by each worker (give a hub id or a shared path on a multi-machine Ray cluster).
    """
    if executor not in ("process", "ray"):
        raise ValueError(f"executor must be 'process' or 'ray', got {executor!r}")
    if workers < 1 or shard_size < 1:
        raise ValueError("workers and shard_size must be at least 1")
    if executor == "ray":
        _import_ray()  # fail before any work when Ray is missing
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to encode")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = model_path_or_name if isinstance(model_path_or_name, SentenceTransformer) else None
    if model is not None and max_seq_length is not None and max_seq_length != model.max_seq_length:
        raise ValueError(f"the model has max_seq_length {model.max_seq_length}, not {max_seq_length}")
    if fingerprint is None:
        if model is None:
            model = load_model(str(model_path_or_name), max_seq_length)
        fingerprint = model_fingerprint(model)
    if model is not None:
        max_seq_length = model.max_seq_length
    manifest = {
        "model": fingerprint,
        "texts": texts_fingerprint(texts),
        "count": len(texts),
        "shard_size": shard_size,
        "max_seq_length": max_seq_length,
        "role": role,
    }
    _claim(out_dir, manifest, overwrite)

    bounds = [
        (i, start, min(start + shard_size, len(texts))) for i, start in enumerate(range(0, len(texts), shard_size))
    ]
    pending = [(i, start, end) for i, start, end in bounds if not _valid_shard(shard_path(out_dir, i), end - start)]
    jobs = [(i, texts[start:end]) for i, start, end in pending]
    done = len(bounds) - len(pending)
    logger.info("%d shards of %d items: %d done, %d to encode", len(bounds), shard_size, done, len(pending))

    description = f"encoding {len(texts):,} texts in shards of {shard_size:,} ({workers} workers)"
    with progress_lines(description, len(bounds), progress, unit="shards", completed=done) as advance:
        if jobs:
            if executor == "ray":
                source = model if model is not None else str(model_path_or_name)
                results = _run_ray(source, jobs, workers, batch_size, max_seq_length, device, ray_address, role)
            elif workers == 1 or len(jobs) == 1:  # one shard left: starting processes would only cost time
                results = _run_here(model, str(model_path_or_name), jobs, batch_size, max_seq_length, device, role)
            else:
                results = _run_processes(
                    model, str(model_path_or_name), jobs, workers, batch_size, max_seq_length, device, out_dir, role
                )
            for index, embeddings in results:
                save_array(shard_path(out_dir, index), embeddings)
                advance(1)
    shutil.rmtree(out_dir / MODEL_COPY, ignore_errors=True)
    return np.concatenate([np.load(shard_path(out_dir, i)) for i, _, _ in bounds])


def sharded_cached_encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    cache_dir: Path,
    workers: int,
    shard_size: int = 10_000,
    batch_size: int = 64,
    executor: Executor = "process",
    progress: bool = True,
    fingerprint: str | None = None,
    role: Role = "document",
) -> np.ndarray:
    """:func:`~harnesslm.encoding.cache.cached_encode` with the encoding done by :func:`encode_sharded`: a
    catalog encoded as documents (the default), or texts encoded as queries with ``role="query"``.

    Reads and fills the same cache file, so either path reuses what the other computed. Shards live in a
    hidden folder next to it while encoding (a crash resumes from them) and are deleted once the file exists.
    """
    texts = list(texts)
    fingerprint = fingerprint or model_fingerprint(model)
    path = cache_path(model, texts, cache_dir, fingerprint, role=role)
    cached = read_cache(path, len(texts))
    if cached is not None:
        return cached
    shards = path.with_name(f".{path.stem}.shards")
    embeddings = encode_sharded(
        model,
        texts,
        shards,
        shard_size=shard_size,
        workers=workers,
        batch_size=batch_size,
        executor=executor,
        fingerprint=fingerprint,
        overwrite=True,  # the folder is keyed by model and texts: only a new shard size can differ
        progress=progress,
        role=role,
    )
    save_array(path, embeddings)
    shutil.rmtree(shards, ignore_errors=True)
    return embeddings


# shards and manifest ---------------------------------------------------------------------------------------
def _claim(out_dir: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Make ``out_dir`` hold shards for ``manifest``: check an existing manifest, or write a new one."""
    path = out_dir / MANIFEST
    existing = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if existing is not None:
        existing.setdefault("role", "document")  # manifests from before roles: every shard was a document
    stray = sorted(out_dir.glob("shard-*.npy"))
    if existing == manifest:
        return
    if existing is not None or stray:
        differs = sorted(k for k in manifest if existing is None or existing.get(k) != manifest[k])
        if not overwrite:
            raise ShardManifestError(
                f"{out_dir} holds shards made with other {', '.join(differs) or 'settings'} "
                f"(manifest {existing}, wanted {manifest}): use another folder or overwrite=True"
            )
        logger.warning("%s: shards of other %s, recomputing", out_dir, ", ".join(differs))
        for shard in stray:
            shard.unlink()
    write_text(path, json.dumps(manifest, indent=2))


def _valid_shard(path: Path, rows: int) -> bool:
    if not path.exists():
        return False
    try:
        array = np.load(path, mmap_mode="r")
        return array.ndim == 2 and array.shape[0] == rows and array.dtype == np.float32
    except (OSError, ValueError):
        return False


# executors -------------------------------------------------------------------------------------------------
class _ShardEncoder:
    """Holds one loaded model; encodes one shard per call (in this process, a pool worker or a Ray actor)."""

    def __init__(
        self,
        source: str | SentenceTransformer,
        max_seq_length: int | None,
        batch_size: int,
        threads: int | None = None,
        device: str | None = None,
        role: Role = "document",
    ) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.model = source if isinstance(source, SentenceTransformer) else load_model(source, max_seq_length)
        if device:
            self.model.to(device)
        self.batch_size = batch_size
        self.role: Role = role

    def encode(self, index: int, texts: list[str]) -> tuple[int, np.ndarray]:
        return index, encode(self.model, texts, batch_size=self.batch_size, role=self.role)


_WORKER: _ShardEncoder | None = None


def _init_worker(
    source: str, max_seq_length: int | None, batch_size: int, threads: int, device: str | None, role: Role
) -> None:
    global _WORKER
    _WORKER = _ShardEncoder(source, max_seq_length, batch_size, threads, device, role)


def _encode_in_worker(index: int, texts: list[str]) -> tuple[int, np.ndarray]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.encode(index, texts)


def _run_here(
    model: SentenceTransformer | None,
    source: str,
    jobs: list[tuple[int, list[str]]],
    batch_size: int,
    max_seq_length: int | None,
    device: str | None,
    role: Role,
) -> Iterator[tuple[int, np.ndarray]]:
    worker = _ShardEncoder(model if model is not None else source, max_seq_length, batch_size, device=device, role=role)
    for index, texts in jobs:
        yield worker.encode(index, texts)


def _run_processes(
    model: SentenceTransformer | None,
    source: str,
    jobs: list[tuple[int, list[str]]],
    workers: int,
    batch_size: int,
    max_seq_length: int | None,
    device: str | None,
    out_dir: Path,
    role: Role,
) -> Iterator[tuple[int, np.ndarray]]:
    """Shards on a spawn-context process pool, yielded as they finish; the first failure cancels the rest."""
    if model is not None:  # workers cannot share this process's memory: give them a folder to load
        copy = out_dir / MODEL_COPY
        shutil.rmtree(copy, ignore_errors=True)
        model.save(str(copy))
        source = str(copy)
    workers = min(workers, len(jobs))
    threads = max(1, _cores() // workers)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(source, max_seq_length, batch_size, threads, device, role),
    )
    try:
        yield from as_finished([pool.submit(_encode_in_worker, index, texts) for index, texts in jobs])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def as_finished(futures: Sequence[Future]) -> Iterator[Any]:
    """Each future's result as soon as it finishes, so that its shard is saved at once (an interrupted pass
    keeps every finished shard); a failed one raises here. (``wait(return_when=FIRST_EXCEPTION)``, used before,
    returns only once every future is done when none fails: no shard was saved until the whole pass ended.)"""
    for future in as_completed(futures):
        yield future.result()


def _run_ray(
    source: str | SentenceTransformer,
    jobs: list[tuple[int, list[str]]],
    workers: int,
    batch_size: int,
    max_seq_length: int | None,
    device: str | None,
    address: str | None,
    role: Role,
) -> Iterator[tuple[int, np.ndarray]]:
    """One Ray actor per worker, each loading the model once; a loaded model travels via the object store.

    An actor that dies (its node lost, its process killed) is started again and its shard encoded again, up to
    :data:`RAY_RESTARTS` times; past that the pass stops with Ray's error and a rerun encodes only the shards
    not saved. The actors are named ``harnesslm-encoder-<pass>-<i>`` (``ray list actors`` shows them).
    """
    ray = _import_ray()
    from ray.util import ActorPool

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True)
    workers = min(workers, len(jobs))
    threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
    gpus = 1 if device and device.startswith("cuda") else 0
    actor_class = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=RAY_RESTARTS, max_task_retries=RAY_RESTARTS)(
        _ShardEncoder
    )
    shipped = ray.put(source) if isinstance(source, SentenceTransformer) else source
    name = f"{RAY_ACTOR_PREFIX}{uuid.uuid4().hex[:8]}"
    actors = [
        actor_class.options(name=f"{name}-{i}").remote(shipped, max_seq_length, batch_size, threads, device, role)
        for i in range(workers)
    ]
    try:
        yield from ActorPool(actors).map_unordered(lambda actor, job: actor.encode.remote(*job), jobs)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


def _import_ray() -> Any:
    extras.require("ray", "executor='ray' (executor='process' needs nothing more)")
    import ray

    return ray


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

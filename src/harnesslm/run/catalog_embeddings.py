"""The run's texts (its catalog, its alignment pool) encoded by a model, through the embedding cache (so the same
model never encodes them twice), on one process or in resumable shards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harnesslm.encoding.backend import Engine, accelerator, choose_encoder
from harnesslm.encoding.cache import cache_path, cached_encode
from harnesslm.models.prompts import Role
from harnesslm.run.run_dir import RunDir


def item_embeddings(run: RunDir, model, progress: bool = True) -> np.ndarray:
    """The catalog encoded by ``model`` as documents, read from the embedding cache when this exact model did it
    before (see :func:`encoded_texts`)."""
    return encoded_texts(run, model, run.catalog["text"].tolist(), "document", run.config.encoding.batch_size, progress)


def item_cache_path(run: RunDir, model) -> Path:
    """The embedding-cache file that holds the run's catalog encoded by ``model`` (as documents), whichever path
    (one process or shards) wrote it."""
    return cache_path(model, run.catalog["text"].tolist(), run.cache_dir, role="document")


def encoded_texts(
    run: RunDir, model, texts: Sequence[str], role: Role, batch_size: int, progress: bool = True
) -> np.ndarray:
    """``texts`` encoded by ``model`` in ``role``, through the embedding cache (keyed by the model's weights, the
    texts and the role's prompt).

    A miss is encoded by ``encoding.backend``: ``auto`` runs the model's float32 ONNX export on a CPU when it
    exports (same embeddings, faster), else PyTorch (:mod:`harnesslm.encoding.backend`).

    With ``encoding.workers > 1`` a miss is encoded in resumable shards on that many processes (or Ray
    actors), whatever the role: the catalog pass, and the alignment pool's teacher targets, which for a large
    teacher cost as much as the catalog. The result fills the same cache file. Processes share out CPU cores:
    on a GPU (without Ray) one process encodes in large batches instead, which is what a config written for a
    CPU then gets unchanged.
    """
    cfg = run.config.encoding
    if cfg.workers > 1 and (cfg.executor == "ray" or accelerator() is None):
        from harnesslm.encoding.sharded import sharded_cached_encode

        return sharded_cached_encode(
            model,
            texts,
            run.cache_dir,
            workers=cfg.workers,
            shard_size=cfg.shard_size,
            batch_size=batch_size,
            executor=cfg.executor,
            progress=progress,
            role=role,
        )
    return cached_encode(
        model,
        texts,
        run.cache_dir,
        batch_size=batch_size,
        progress=progress,
        role=role,
        encoder=engine_for(run, model, role),
    )


def engine_for(run: RunDir, model, role: Role) -> Callable[[int], Engine | None]:
    """What encodes ``model``'s texts in ``role`` on a cache miss, by ``encoding.backend`` (asked lazily, with
    the number of texts: an export is only made when enough is to be encoded)."""
    root = run.cache_dir.parent / "onnx"
    return lambda n: choose_encoder(model, run.config.encoding.backend, root, role, texts=n)

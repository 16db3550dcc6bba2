"""The run's catalog encoded by a model, through the embedding cache (so the same model never encodes it
twice), on one process or in resumable shards."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harnesslm.encoding.backend import Engine, choose_encoder
from harnesslm.encoding.cache import cached_encode
from harnesslm.models.prompts import Role
from harnesslm.run.run_dir import RunDir


def item_embeddings(run: RunDir, model, progress: bool = True) -> np.ndarray:
    """The catalog encoded by ``model``, read from the embedding cache when this exact model did it before.

    A miss is encoded by ``index.encode_backend``: ``auto`` runs the model's float32 ONNX export on a CPU when it
    exports (same embeddings, faster), else PyTorch (:mod:`harnesslm.encoding.backend`).

    With ``index.encode_workers > 1`` a miss is encoded in resumable shards on that many processes (or Ray
    actors); the result fills the same cache file.
    """
    cfg = run.config.index
    if cfg.encode_workers > 1:
        from harnesslm.encoding.sharded import sharded_cached_encode

        return sharded_cached_encode(
            model,
            run.catalog["text"].tolist(),
            run.cache_dir,
            workers=cfg.encode_workers,
            shard_size=cfg.shard_size,
            batch_size=cfg.encode_batch_size,
            executor=cfg.encode_executor,
            progress=progress,
        )
    return cached_encode(
        model,
        run.catalog["text"].tolist(),
        run.cache_dir,
        batch_size=cfg.encode_batch_size,
        progress=progress,
        role="document",
        encoder=engine_for(run, model, "document"),
    )


def engine_for(run: RunDir, model, role: Role) -> Callable[[int], Engine | None]:
    """What encodes ``model``'s texts in ``role`` on a cache miss, by ``index.encode_backend`` (asked lazily, with
    the number of texts: an export is only made when enough is to be encoded)."""
    root = run.cache_dir.parent / "onnx"
    return lambda n: choose_encoder(model, run.config.index.encode_backend, root, role, texts=n)

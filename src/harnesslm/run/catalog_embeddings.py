"""The run's catalog encoded by a model, through the embedding cache (so the same model never encodes it
twice), on one process or in resumable shards."""

from __future__ import annotations

import numpy as np

from harnesslm.encoding.cache import cached_encode
from harnesslm.run.run_dir import RunDir


def item_embeddings(run: RunDir, model, progress: bool = True) -> np.ndarray:
    """The catalog encoded by ``model``, read from the embedding cache when this exact model did it before.

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
    )

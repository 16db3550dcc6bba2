"""Encode texts with a model, caching the result on disk keyed by the model's fingerprint and the texts.

Encoding a 50k-item catalog with a large teacher takes many minutes on a CPU: a second run (or a later step
of the same run) must not pay for it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from harnesslm.atomic import save_array
from harnesslm.encoding.backend import Engine, encode_in_batches
from harnesslm.models.fingerprint import model_fingerprint, texts_fingerprint
from harnesslm.models.prompts import Role, encode_as, prompt_of
from harnesslm.progress import interactive
from harnesslm.progress import progress as progress_lines

logger = logging.getLogger(__name__)


def encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    batch_size: int = 64,
    progress: bool = False,
    role: Role = "query",
) -> np.ndarray:
    """float32 embeddings, L2-normalised so that inner product is cosine similarity. ``role`` picks the model's
    query or document prompt (``encode_query`` / ``encode_document``); a model without prompts ignores it."""
    embeddings = encode_as(
        model,
        list(texts),
        role,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=progress,
    )
    return np.ascontiguousarray(embeddings, dtype=np.float32)


def cached_encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    cache_dir: Path,
    batch_size: int = 64,
    progress: bool = True,
    fingerprint: str | None = None,
    role: Role = "query",
    encoder: Callable[[int], Engine | None] | None = None,
) -> np.ndarray:
    """Like :func:`encode`, but reads ``cache_dir/<model fp>-<texts fp>.npy`` when it exists.

    ``encoder``, called with the number of texts only on a cache miss, may give another engine for the same
    model (its ONNX export or a GPU copy, see :mod:`harnesslm.encoding.backend`), which gives the same
    embeddings; None keeps PyTorch.
    The file is written to a temporary name and renamed, so an interrupted run never leaves a truncated cache
    that a later run would trust.
    """
    path = cache_path(model, texts, cache_dir, fingerprint, role)
    cached = read_cache(path, len(texts))
    if cached is not None:
        return cached
    engine = encoder(len(texts)) if encoder is not None else None
    if engine is not None:
        embeddings = encode_in_batches(engine, texts, batch_size, progress)
    else:
        embeddings = _encode_in_chunks(model, texts, batch_size, progress, role)
    save_array(path, embeddings)
    return embeddings


def cache_path(
    model: SentenceTransformer,
    texts: Sequence[str],
    cache_dir: Path,
    fingerprint: str | None = None,
    role: Role = "query",
) -> Path:
    """Where :func:`cached_encode` keeps these texts encoded by this model in this role (the sharded encoder
    uses it too). The role's prompt is part of the name when there is one, so queries and documents encoded
    with different prompts never share a file; a model without prompts keeps the name it always had."""
    fingerprint = fingerprint or model_fingerprint(model)
    prompt = prompt_of(model, role)
    tag = f"-{role[0]}{texts_fingerprint([prompt])[:8]}" if prompt else ""
    return Path(cache_dir) / f"{fingerprint}-{texts_fingerprint(texts)}-{model.max_seq_length}{tag}.npy"


def read_cache(path: Path, count: int) -> np.ndarray | None:
    """The cached embeddings at ``path`` if the file exists and holds ``count`` rows, else None."""
    if not Path(path).exists():
        return None
    cached = np.load(path)
    if cached.shape[0] != count:
        return None
    logger.info("embeddings read from cache %s", path)
    return cached


CHUNK = 4096
"""Texts per call of the model's own ``encode`` when a progress display follows a large encoding."""


def _encode_in_chunks(model: SentenceTransformer, texts: Sequence[str], batch_size: int, progress: bool, role: Role):
    """:func:`encode` in chunks, so a long PyTorch pass shows its progress (a bar, or timed lines in a log)."""
    texts = list(texts)
    if not progress or len(texts) <= CHUNK:
        return encode(model, texts, batch_size=batch_size, progress=progress and interactive(), role=role)
    parts = []
    with progress_lines("encoding (PyTorch)", len(texts), progress) as advance:
        for start in range(0, len(texts), CHUNK):
            parts.append(encode(model, texts[start : start + CHUNK], batch_size=batch_size, role=role))
            advance(len(parts[-1]))
    return np.concatenate(parts)

"""A model's parameter count, read from its weight files' headers without loading it (or torch).

The recipe's default students depend on the teacher's size (``config.default_students``): a small teacher's
static student keeps all of it, a large one also gets a small transformer student. Loading a 300M-parameter
model to count its weights would cost seconds on every config load; a safetensors file starts with a JSON
header listing every tensor's shape, so the count costs one small read.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from harnesslm.models.bundled import BUNDLED_PREFIX, GEMMA, MINILM, MPNET, BundledModelError, resolve_model

BUNDLED_PARAMETERS = {MINILM: 22_700_000, MPNET: 109_500_000, GEMMA: 307_600_000}
"""The bundled models' sizes, known without their files (EmbeddingGemma is an opt-in download)."""


def safetensors_parameters(path: Path) -> int:
    """The number of weights in one ``.safetensors`` file, from its header."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


def parameter_count(name_or_path: str, cache_dir: Path | None = None) -> int | None:
    """The model's parameters: known for bundled models, read from a local folder's safetensors files (any
    depth: a sentence-transformers folder keeps Dense layers in subfolders); None for a hub id not on disk."""
    if name_or_path.startswith(BUNDLED_PREFIX):
        return BUNDLED_PARAMETERS.get(name_or_path[len(BUNDLED_PREFIX) :])
    try:
        folder = Path(resolve_model(name_or_path, cache_dir))
    except BundledModelError:
        return None
    if not folder.is_dir():
        return None
    files = sorted(folder.rglob("*.safetensors"))
    return sum(safetensors_parameters(f) for f in files) if files else None

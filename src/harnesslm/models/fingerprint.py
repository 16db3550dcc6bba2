"""Content fingerprints: which weights produced an embedding, so caches and indexes are never mixed up."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import torch
from sentence_transformers import SentenceTransformer


def model_fingerprint(model: SentenceTransformer) -> str:
    """sha256 over the model's modules (class and settings, such as the pooling mode), its prompts and every
    weight, in a fixed order (16 hex chars).

    Two models that embed differently cannot share a fingerprint; loading the same folder twice gives the same
    one. Hashing 110M parameters takes about a second, small next to encoding anything with such a model.
    """
    digest = hashlib.sha256()
    layout = [[type(module).__name__, _config_of(module)] for module in model]
    prompts = {name: text for name, text in (getattr(model, "prompts", None) or {}).items() if text}
    if prompts:  # the same weights with other prompts embed differently (a model without keeps its fingerprint)
        layout.append(["prompts", prompts, getattr(model, "default_prompt_name", None)])
    digest.update(json.dumps(layout, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def texts_fingerprint(texts: Iterable[str]) -> str:
    """sha256 of a sequence of texts (order matters), 16 hex chars."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def _config_of(module: torch.nn.Module) -> dict:
    get_config = getattr(module, "get_config_dict", None)
    return get_config() if callable(get_config) else {}

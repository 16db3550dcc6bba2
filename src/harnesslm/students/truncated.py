"""The truncated student: the first ``k`` transformer layers of a model (by default the teacher itself), its
pooling, a projection to the teacher's dimension when needed (``heads``) and a final ``Normalize``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Transformer

from harnesslm.models.layers import keep_first_layers
from harnesslm.models.model_loading import embedding_dim
from harnesslm.students.heads import projection_head


def truncated_student(
    base: SentenceTransformer,
    layers: int,
    teacher_dim: int,
    max_seq_length: int | None = None,
    linear_head: bool = False,
) -> SentenceTransformer:
    """The first ``layers`` transformer layers of a copy of ``base`` (left untouched), with its pooling; a
    projection to ``teacher_dim`` is added when the pooled dimension differs, or always with ``linear_head``
    (it starts as the identity; :func:`~harnesslm.training.alignment.fit_projection` fits it). Any
    ``Dense``/``Normalize`` of ``base`` is dropped: the projection replaces it.
    """
    base = copy.deepcopy(base)
    drop_layers(base, layers)
    if max_seq_length is not None:
        base[0].max_seq_length = max_seq_length
    modules = [m for m in base if not isinstance(m, Normalize | Dense)]
    dim = embedding_dim(SentenceTransformer(modules=modules, device="cpu"))
    if dim != teacher_dim or linear_head:
        modules.append(projection_head(dim, teacher_dim))
    modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu")


def transformer_layer_count(folder: Path) -> int | None:
    """``num_hidden_layers`` from a model folder's ``config.json`` without loading it (None when unknown)."""
    for candidate in (folder / "config.json", *sorted(folder.glob("*_Transformer/config.json"))):
        if candidate.is_file():
            try:
                value = json.loads(candidate.read_text(encoding="utf-8")).get("num_hidden_layers")
            except (OSError, ValueError):
                return None
            return int(value) if isinstance(value, int) else None
    return None


def drop_layers(model: SentenceTransformer, layers: int) -> None:
    """Keep only the first ``layers`` transformer layers of ``model``, in place (the rest of it is untouched).

    Used to truncate a base model, and for progressive layer dropping: a student aligned with more layers
    loses its top ones and is re-aligned, keeping its projection and pooling.
    """
    transformer = model[0]
    if not isinstance(transformer, Transformer):
        raise ValueError("a truncated student needs a base model whose first module is a Transformer")
    keep_first_layers(transformer.auto_model, layers)


def transformer_layers(model: SentenceTransformer) -> int | None:
    """How many transformer layers the model has (None for a static model)."""
    first = model[0]
    return len(first.auto_model.encoder.layer) if isinstance(first, Transformer) else None

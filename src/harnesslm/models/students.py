"""The two student query encoders, both plain sentence-transformers models that load on their own.

* **static**: a token-embedding table distilled from the teacher's vocabulary with model2vec
  (Tulkens & van Dongen, 2024), mean-pooled; no attention, so a query costs a few table look-ups.
* **truncated**: the first ``k`` transformer layers of a model (by default the teacher itself).

Either one gets a linear projection to the teacher's dimension (a ``Dense`` module saved inside the model
folder) and a final ``Normalize``, so its query embeddings live in the teacher's space and search the
teacher's item index directly: nothing is re-indexed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import (
    Dense,
    Normalize,
    StaticEmbedding,
    Transformer,
)

from harnesslm.models.layers import keep_first_layers
from harnesslm.models.vocabulary import unpadded
from harnesslm.models.word_starts import with_word_starts

STUDENT_META = "harness_student.json"


def load_model(name_or_path: str, max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model on the CPU (a local folder or a hub id)."""
    model = SentenceTransformer(name_or_path, device="cpu")
    if max_seq_length is not None and isinstance(model[0], Transformer):
        model.max_seq_length = max_seq_length
    return model


def embedding_dim(model: SentenceTransformer) -> int:
    dim = model.get_embedding_dimension()
    if dim is None:
        raise ValueError("cannot tell the model's embedding dimension")
    return int(dim)


def distill_static(
    teacher: SentenceTransformer,
    pca_dims: int | None = 256,
    vocabulary: list[str] | None = None,
    texts: Sequence[str] | None = None,
) -> StaticEmbedding:
    """A model2vec static embedding table distilled from the teacher's own tokenizer vocabulary.

    Each vocabulary token goes through the teacher once; the outputs (PCA-reduced, Zipf/SIF-weighted) become
    the table. ``vocabulary`` adds whole words as tokens of their own (see ``models.vocabulary``). Uses
    model2vec's ``distill_from_model`` on the in-memory teacher, so a fine-tuned teacher that was never saved to
    a hub works too. With ``texts``, only the tokens those texts use are distilled (``models.shop_tokens``).
    The table's tokenizer reads a text's first word as a word start (``models.word_starts``).
    """
    from model2vec.distill import distill_from_model

    transformer = teacher[0]
    if not isinstance(transformer, Transformer):
        raise ValueError("static distillation needs a teacher whose first module is a Transformer")
    if texts is not None:
        from harnesslm.models.shop_tokens import distill_shop_tokens

        tokenizer, table = distill_shop_tokens(
            transformer.auto_model, teacher.tokenizer, texts, vocabulary or (), pca_dims
        )
        return StaticEmbedding(tokenizer, embedding_weights=torch.from_numpy(table))
    static_model = distill_from_model(
        model=transformer.auto_model,
        tokenizer=unpadded(teacher.tokenizer),
        vocabulary=vocabulary or None,
        pca_dims=pca_dims,
        quantize_to="float32",
        device="cpu",
    )
    weights = StaticEmbedding._fold_model2vec_weights(
        static_model.embedding,
        getattr(static_model, "token_mapping", None),
        getattr(static_model, "weights", None),
    )
    return StaticEmbedding(with_word_starts(static_model.tokenizer), embedding_weights=weights.float())


def static_model(table: StaticEmbedding) -> SentenceTransformer:
    """The plain distilled static model, searching its own space (the untrained baseline)."""
    return SentenceTransformer(modules=[table, Normalize()], device="cpu")


def static_student(table: StaticEmbedding, teacher_dim: int) -> SentenceTransformer:
    """Static table -> linear projection to the teacher's dimension -> L2 normalisation."""
    projection = _projection(table.get_embedding_dimension(), teacher_dim)
    return SentenceTransformer(modules=[table, projection, Normalize()], device="cpu")


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
        modules.append(_projection(dim, teacher_dim))
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


def _projection(in_dim: int, out_dim: int) -> Dense:
    """A linear map (no activation) initialised to the identity on the shared dimensions."""
    dense = Dense(in_dim, out_dim, bias=True, activation_function=None)
    with torch.no_grad():
        dense.linear.weight.zero_()
        dense.linear.bias.zero_()
        shared = min(in_dim, out_dim)
        dense.linear.weight[:shared, :shared] = torch.eye(shared)
    return dense


def projection_of(student: SentenceTransformer) -> Dense | None:
    """The student's projection module, if it has one."""
    return next((m for m in student if isinstance(m, Dense)), None)


class StudentMeta(BaseModel):
    """What a student folder's ``harness_student.json`` records, written and read in this one shape."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    phase: str = Field(description="aligned, refined, untrained, or the phase a distilled copy started from")
    name: str | None = None
    kind: Literal["static", "truncated"] | None = None
    teacher_space: str | None = Field(
        None, description="fingerprint of the teacher whose item index it searches (None: its own space)"
    )
    teacher_dim: int | None = None
    selection: dict[str, Any] | None = Field(None, description="the validation checkpoint kept, and why")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def save_student(student: SentenceTransformer, folder: Path, meta: StudentMeta) -> None:
    """Save the model folder plus ``harness_student.json`` (kind, teacher space fingerprint, phase)."""
    student.save(str(folder))
    (Path(folder) / STUDENT_META).write_text(json.dumps(meta.to_json(), indent=2), encoding="utf-8")


def read_student_meta(folder: Path) -> StudentMeta | None:
    """The folder's student metadata; None when it has none (a model saved by other means)."""
    path = Path(folder) / STUDENT_META
    return StudentMeta.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None


def transformer_layers(model: SentenceTransformer) -> int | None:
    """How many transformer layers the model has (None for a static model)."""
    first = model[0]
    return len(first.auto_model.encoder.layer) if isinstance(first, Transformer) else None

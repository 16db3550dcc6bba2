"""Loading any sentence-transformers model (teacher, student, base) on the CPU, and its embedding width."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Transformer


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

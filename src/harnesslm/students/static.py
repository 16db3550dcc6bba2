"""The static student: a token-embedding table distilled from the teacher's vocabulary with model2vec
(Tulkens & van Dongen, 2024), mean-pooled; no attention, so a query costs a few table look-ups. A projection to
the teacher's dimension (``heads``) and a final ``Normalize`` put its query embeddings in the teacher's space.
What the table holds is built by the modules beside this one: the shop's words (``vocabulary``), only the tokens
the shop uses (``shop_tokens``), phrases (``phrases``), word starts (``word_starts``), lower case (``lowercase``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding, Transformer

from harnesslm.students.heads import projection_head
from harnesslm.students.vocabulary import unpadded
from harnesslm.students.word_starts import with_word_starts


def distill_static(
    teacher: SentenceTransformer,
    pca_dims: int | None = 256,
    vocabulary: list[str] | None = None,
    texts: Sequence[str] | None = None,
) -> StaticEmbedding:
    """A model2vec static embedding table distilled from the teacher's own tokenizer vocabulary.

    Each vocabulary token goes through the teacher once; the outputs (PCA-reduced, Zipf/SIF-weighted) become
    the table. ``vocabulary`` adds whole words as tokens of their own (see ``students.vocabulary``). Uses
    model2vec's ``distill_from_model`` on the in-memory teacher, so a fine-tuned teacher that was never saved to
    a hub works too. With ``texts``, only the tokens those texts use are distilled (``students.shop_tokens``).
    The table's tokenizer reads a text's first word as a word start (``students.word_starts``).
    """
    from model2vec.distill import distill_from_model

    transformer = teacher[0]
    if not isinstance(transformer, Transformer):
        raise ValueError("static distillation needs a teacher whose first module is a Transformer")
    if texts is not None:
        from harnesslm.students.shop_tokens import distill_shop_tokens

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
    projection = projection_head(table.get_embedding_dimension(), teacher_dim)
    return SentenceTransformer(modules=[table, projection, Normalize()], device="cpu")

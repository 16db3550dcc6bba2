"""Distilling only the tokens a shop's texts use: the same rows as model2vec's full table, predicted elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harnesslm.models.model_loading import load_model
from harnesslm.students.shop_tokens import predicted_rows, used_token_ids
from harnesslm.students.static import distill_static, static_model

SHOP = ["cordless drill kit", "brass door hinge", "drill bits"]


@pytest.fixture(scope="module")
def tables(tiny_teacher: Path):
    teacher = load_model(str(tiny_teacher))
    full = distill_static(teacher, pca_dims=None, vocabulary=["zorblat"])
    shop = distill_static(teacher, pca_dims=None, vocabulary=["zorblat"], texts=[*SHOP, "zorblat"])
    return full, shop


def test_used_rows_match_the_full_table(tables) -> None:
    full, shop = tables
    assert shop.tokenizer.get_vocab() == full.tokenizer.get_vocab()
    used = used_token_ids(shop.tokenizer, [*SHOP, "zorblat"])
    assert 0 < len(used) < shop.embedding.weight.shape[0] // 2
    assert shop.tokenizer.encode("zorblat", add_special_tokens=False).tokens == ["zorblat"]
    weights = shop.embedding.weight.detach().numpy()
    np.testing.assert_allclose(weights[used], full.embedding.weight.detach().numpy()[used], atol=1e-5)
    unused = np.setdiff1d(np.arange(len(weights)), used)
    assert np.isfinite(weights).all() and (np.abs(weights[unused]).sum(axis=1) > 0).all()


def test_a_shop_text_encodes_as_with_the_full_table(tables) -> None:
    full, shop = tables
    texts = ["drill hinge", "zorblat kit"]
    np.testing.assert_allclose(static_model(shop).encode(texts), static_model(full).encode(texts), atol=1e-5)


def test_unused_rows_are_the_linear_prediction_from_input_embeddings() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(500, 12)).astype(np.float32)
    mapping, shift = rng.normal(size=(12, 6)), rng.normal(size=6)
    truth = (inputs @ mapping + shift).astype(np.float32)
    used = np.arange(0, 500, 5)
    rows = predicted_rows(inputs, used, truth[used] + 0.5, ridge=1e-6)
    np.testing.assert_array_equal(rows[used], truth[used] + 0.5)
    np.testing.assert_allclose(rows, truth + 0.5, atol=1e-3)


def test_pca_is_fitted_on_the_used_tokens(tiny_teacher: Path) -> None:
    texts = [*SHOP, "hammer", "wrench", "nail"]
    table = distill_static(load_model(str(tiny_teacher)), pca_dims=4, texts=texts)
    assert table.get_embedding_dimension() == 4
    used = used_token_ids(table.tokenizer, texts)
    assert np.abs(table.embedding.weight.detach().numpy()[used]).sum(axis=1).min() > 0


@pytest.mark.parametrize("texts", [None, [*SHOP, "zorblat"]], ids=["full table", "shop tokens"])
def test_a_tokenizer_that_pads_to_a_fixed_length_distils_the_same_table(tiny_teacher: Path, texts) -> None:
    """all-MiniLM-L6-v2 and all-mpnet-base-v2 ship tokenizers that pad every text to 128 ids; an added word must
    still be read as its own pieces, not followed by attended padding."""
    teacher = load_model(str(tiny_teacher))
    padded = load_model(str(tiny_teacher))
    pad = padded.tokenizer.pad_token
    padded.tokenizer.backend_tokenizer.enable_padding(length=16, pad_id=padded.tokenizer.pad_token_id, pad_token=pad)
    padded.tokenizer.backend_tokenizer.enable_truncation(max_length=16)
    assert len(padded.tokenizer.backend_tokenizer.encode("zorblat").ids) == 16
    plain = distill_static(teacher, pca_dims=None, vocabulary=["zorblat"], texts=texts)
    got = distill_static(padded, pca_dims=None, vocabulary=["zorblat"], texts=texts)
    np.testing.assert_allclose(
        got.embedding.weight.detach().numpy(), plain.embedding.weight.detach().numpy(), atol=1e-6
    )
    assert len(padded.tokenizer.backend_tokenizer.encode("zorblat").ids) == 16, "the teacher's tokenizer is untouched"

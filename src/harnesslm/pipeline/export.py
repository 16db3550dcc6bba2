"""The export step: each student's latest phase as ONNX (float32 + int8) in ``students/NAME/PHASE/onnx``, and
on request one deployable asymmetric sentence-transformers model (``export_router``).

The exported folder lives inside the student folder it came from, so retraining that phase (which replaces
the folder atomically) removes a stale export with it. ``export.json`` records file sizes and how closely the
exported encoders agree with the PyTorch student on the held-out test queries. onnx, onnxruntime and
onnxscript are an optional extra (``harness-lm[onnx]``): they are imported only when an export is made or
found, so bench and evaluate work without them.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harnesslm import extras
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.systems import SystemId
from harnesslm.onnx.format import ONNX_DIR, ONNX_META
from harnesslm.run.run_dir import RunDir, console
from harnesslm.run.student_store import latest_phase, load_student
from harnesslm.students.meta import read_student_meta

if TYPE_CHECKING:
    from harnesslm.onnx.runtime import OnnxQueryEncoder


def onnx_label(name: str, phase: str, quantized: bool = False) -> str:
    """How an exported encoder is named in metrics.json, bench.json and the report."""
    return SystemId(name, phase, "onnx-int8" if quantized else "onnx").label


def onnx_encoders(run: RunDir, name: str, phase: str, threads: int | None = None) -> dict[str, OnnxQueryEncoder]:
    """The exported float32 and int8 encoders of a student phase, by label; empty when it was not exported."""
    folder = run.student_dir(name, phase) / ONNX_DIR
    if not (folder / ONNX_META).exists():
        return {}
    try:
        extras.require("onnx", "an ONNX encoder", ("onnxruntime",))
    except extras.MissingExtraError as error:
        console.print(f"[yellow]{folder} is not used: {error}")
        return {}
    from harnesslm.onnx.runtime import OnnxQueryEncoder

    out = {onnx_label(name, phase): OnnxQueryEncoder.load(folder, threads=threads)}
    with suppress(FileNotFoundError):  # absent when exported without quantization
        out[onnx_label(name, phase, quantized=True)] = OnnxQueryEncoder.load(folder, quantized=True, threads=threads)
    return out


def export(run: RunDir, names: list[str] | None = None) -> dict:
    """Export each student's latest phase; record sizes (MB) and agreement with the PyTorch student."""
    extras.require("onnx", "harness export")
    from harnesslm.onnx.exporter import SAMPLE_TEXTS, export_onnx, row_cosines

    results = {}
    with run.timed("export"):
        queries = list(dict.fromkeys(run.split("test")["query"]))[: run.config.evaluation.max_queries]
        queries = queries or list(SAMPLE_TEXTS)
        for cfg in run.students(names):
            phase = latest_phase(run, cfg.name)
            source = run.student_dir(cfg.name, phase)
            student = load_student(run, cfg.name, phase)
            info = export_onnx(student, source / ONNX_DIR, meta=_meta_json(source))
            reference = encode(student, queries, batch_size=256)
            agreement = {}
            for label, encoder in onnx_encoders(run, cfg.name, phase).items():
                key = "int8" if encoder.quantized else "fp32"
                cosines = row_cosines(encoder.encode(queries), reference)
                agreement[f"{key}_mean_cosine"] = float(cosines.mean())
                agreement[f"{key}_min_cosine"] = float(cosines.min())
                console.print(f"{label}: mean cosine to the PyTorch student {cosines.mean():.6f}")
            results[cfg.name] = {
                "phase": phase,
                "folder": str((source / ONNX_DIR).relative_to(run.root)),
                "kind": info.kind,
                "dim": info.dim,
                "max_seq_length": info.max_seq_length,
                "queries": len(queries),
                "files_mb": info.files_mb,
                "pytorch_mb": _folder_mb(source, skip=ONNX_DIR),
                "fp32_max_abs_diff": info.fp32_max_abs_diff,
                **agreement,
            }
            if info.int8_rejected:
                results[cfg.name]["int8_rejected"] = info.int8_rejected
                console.print(f"[yellow]student {cfg.name!r}: {info.int8_rejected} (serve the float32 export)")
            sizes = ", ".join(f"{name} {mb:.2f} MB" for name, mb in info.files_mb.items() if name.endswith(".onnx"))
            console.print(f"student {cfg.name!r} ({phase}) exported to {source / ONNX_DIR}: {sizes}")
        run.update_json("export.json", results)
    return results


def _folder_mb(folder: Path, skip: str) -> float:
    """Size of a model folder in MB, leaving out its ``skip`` subfolder."""
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file() and skip not in p.relative_to(folder).parts]
    return round(float(np.sum(sizes, dtype=np.int64)) / 2**20, 3)


def _meta_json(folder: Path) -> dict:
    meta = read_student_meta(folder)
    return meta.to_json() if meta else {}


def router_dir(run: RunDir, name: str) -> Path:
    return run.root / "export" / f"{name}-router"


def export_router(run: RunDir, name: str | None = None, out: Path | None = None) -> Path:
    """One sentence-transformers folder whose ``Router`` sends queries to the student and documents to the teacher.

    ``encode_query`` then runs the student's latest phase on the raw query, ``encode_document`` the fine-tuned
    teacher with its document prompt: the pair that built and searches the item index, loadable with one
    ``SentenceTransformer(folder)``. The folder gets a model card (``README.md``) written from the run's
    records. Written to a temporary folder and renamed into place (default ``RUN/export/NAME-router``).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Router

    from harnesslm.atomic import atomic_directory
    from harnesslm.models.prompts import prompt_of
    from harnesslm.report.model_card import model_card

    name = name or run.config.students[0].name
    phase = latest_phase(run, name)
    student, teacher = load_student(run, name, phase), run.teacher

    def normalised(model: SentenceTransformer) -> list:
        modules = list(model)
        return modules if any(isinstance(m, Normalize) for m in modules) else [*modules, Normalize()]

    router = Router.for_query_document(query_modules=normalised(student), document_modules=normalised(teacher))
    document_prompt = prompt_of(teacher, "document")
    model = SentenceTransformer(modules=[router], prompts={"document": document_prompt} if document_prompt else None)
    target = out or router_dir(run, name)
    with atomic_directory(Path(target)) as tmp:
        model.save(str(tmp))
        (tmp / "README.md").write_text(model_card(run, name, phase, run.teacher_space), encoding="utf-8")
    console.print(f"asymmetric model ({name} {phase} for queries, the teacher for documents) written to {target}")
    return Path(target)

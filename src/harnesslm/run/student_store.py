"""Students in a run directory: each one's phases (``students/NAME/{aligned,refined}``), saved with their
metadata and the record of what made them, and loaded back."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer

from harnesslm.atomic import atomic_directory
from harnesslm.config import StudentConfig
from harnesslm.models import model_loading
from harnesslm.run import provenance
from harnesslm.run.run_dir import RunDir, StepMissingError
from harnesslm.students import meta as student_meta
from harnesslm.students.dense_sparse import written_back

PHASES = ("aligned", "refined")


def save_student(
    run: RunDir, student: SentenceTransformer, cfg: StudentConfig, phase: str, selection: dict | None = None
) -> None:
    """Save one phase of a student (a DSFormer-factorised one with its layers written back as plain ones)."""
    student = written_back(student)
    with atomic_directory(run.student_dir(cfg.name, phase)) as tmp:
        student_meta.save_student(
            student,
            tmp,
            student_meta.StudentMeta(
                name=cfg.name,
                kind=cfg.kind,
                phase=phase,
                teacher_space=run.teacher_space,
                teacher_dim=model_loading.embedding_dim(student),
                selection=selection or None,
            ),
        )
        provenance.write_record(tmp, *provenance.step_inputs(run, _step_of(phase), cfg))


def load_student(run: RunDir, name: str, phase: str) -> SentenceTransformer:
    folder = run.student_dir(name, phase)
    if not (folder / "modules.json").exists():
        raise StepMissingError(f"no {phase} student {name!r} in {folder}: run `harness {_step_of(phase)}` first")
    return model_loading.load_model(str(folder))


def _step_of(phase: str) -> str:
    return {"aligned": "align", "refined": "refine"}.get(phase, phase)


def latest_phase(run: RunDir, name: str) -> str:
    for phase in ("refined", "aligned"):
        if (run.student_dir(name, phase) / "modules.json").exists():
            return phase
    raise StepMissingError(f"student {name!r} has not been trained: run `harness align` first")

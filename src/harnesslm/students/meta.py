"""A student folder's record, ``harness_student.json``: its kind, phase, teacher space and what selection
kept. The folder itself is a plain sentence-transformers model that loads on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sentence_transformers import SentenceTransformer

STUDENT_META = "harness_student.json"


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

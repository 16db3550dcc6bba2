"""Which system a result belongs to: a student's phase and runtime, or a reference such as the teacher.

Results files key their rows by a readable label (``"static (refined)"``, ``"truncated-2l (refined,
onnx-int8)"``, ``"teacher (fine-tuned)"``); :class:`SystemId` is the one place that writes and reads them, so
no code slices label strings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

PHASES = ("aligned", "refined")
"""A student's training phases, in order."""
RUNTIMES = ("onnx", "onnx-int8")
"""How an exported copy runs; a system without one runs as trained (PyTorch, or numpy for a static table)."""
RETRIEVER_ONLY = "no re-ranker"
"""The re-ranking table's row for the retriever's own order (the report reads it without loading a cross-encoder)."""
TEACHER_RERANKER = "cross-encoder teacher"
"""The re-ranking table's row for the cross-encoder relevance teacher."""


@dataclass(frozen=True)
class SystemId:
    """``name`` (a student, ``teacher``, ``bm25``, ...), its ``phase`` and the ``runtime`` of an exported copy."""

    name: str
    phase: str | None = None
    runtime: str | None = None

    @property
    def label(self) -> str:
        details = ", ".join(part for part in (self.phase, self.runtime) if part)
        return f"{self.name} ({details})" if details else self.name

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, label: str) -> SystemId:
        """The id a label was written from (``parse(x.label) == x``)."""
        name, sep, rest = label.rpartition(" (")
        if not sep or not rest.endswith(")"):
            return cls(label)
        phase, _, runtime = rest[:-1].partition(", ")
        return cls(name, phase or None, runtime or None)

    @property
    def as_trained(self) -> SystemId:
        """The same student and phase without an export's runtime."""
        return replace(self, runtime=None)

    @property
    def phase_rank(self) -> int:
        """Position of a trained student's phase in :data:`PHASES` (-1 for exports and other systems)."""
        return PHASES.index(self.phase) if self.runtime is None and self.phase in PHASES else -1

    @property
    def previous_phase(self) -> SystemId | None:
        """The same student one phase earlier (``refined`` -> ``aligned``); None when there is none."""
        rank = self.phase_rank
        return replace(self, phase=PHASES[rank - 1]) if rank > 0 else None

"""What made each artifact: the settings and inputs of the step that wrote it, so a rerun redoes what changed.

Like a build system or a DVC stage, every step writes a small record into its output folder (inside the same
atomic write, so an artifact never exists without the record of what made it): the config sections it
depends on and the fingerprints of its inputs. On a rerun, :func:`stale_reason` compares that record with the
current settings and inputs and says, in words, why the step must run again; a changed step changes its
fingerprint, so every step after it is redone too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harnesslm.config import (
    STUDENT_LEGACY,
    IndexConfig,
    RelevanceConfig,
    RunConfig,
    Schedule,
    StudentConfig,
    TeacherConfig,
)
from harnesslm.students.shop_tokens import TABLE_VERSION

if TYPE_CHECKING:
    from harnesslm.run.run_dir import RunDir

RECORD_FILE = "harness_step.json"
ADDED_SETTINGS: dict[str, Any] = {
    "student.domain_vocabulary": 0,
    "teacher.query_prompt": None,
    "teacher.document_prompt": None,
    "student.align.warmup_ratio": 0.1,
    "student.refine.warmup_ratio": 0.1,
    "relevance.teacher.schedule.warmup_ratio": 0.1,
    "relevance.reranker.schedule.warmup_ratio": 0.1,
    "index.milvus.full_text": False,
    "index.dim": None,
    "teacher.negatives_from": "teacher",
    "student.lowercase": False,
    "static_table_version": 4,  # the version when records began to carry it (earlier tables: unknown)
    "teacher.schedule.epochs": None,
    "student.align.epochs": None,
    "student.refine.epochs": None,
    "relevance.teacher.schedule.epochs": None,
    "relevance.reranker.schedule.epochs": None,
    "relevance.bi_encoder.schedule.epochs": None,
    "student.phrases": 0,
    "student.align.score_weight": 0.0,
    "student.align.score_k": 20,
    "student.align.score_temperature": 0.05,
    "pool.train_queries_weight": 1,
    "selection.patience": None,  # every step trained, as before early stopping existed
    "selection.min_delta": 0.0,
    "data.ood_holdout": 0.0,
    "teacher.loss": "infonce",
    "teacher.triplet_margin": 0.1,
    "teacher.adversarial": {"method": "off", "epsilon": 1.0, "weight": 0.5},
    "teacher.graph_regularizer": {"weight": 0.0, "temperature": 0.05},
    "teacher.ood_regularizer": {"weight": 0.0, "tokens": 16},
    "teacher.cross_encoder_labels": {"weight": 0.0, "model": None, "margin_scale": 2.5},
    "relevance.teacher.adversarial": {"method": "off", "epsilon": 1.0, "weight": 0.5},
    "relevance.teacher.professional_terms": False,
    "student.dense_sparse": {"rank_ratio": 0.0, "two_four": True},
}
"""Settings added after records existed, with the value that reproduces what earlier versions did: a record
without one of them still matches while the setting has that value, so upgrading does not redo a run."""


def _moved(section: str, legacy: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {f"{section}.{old}": tuple(f"{section}.{new}" for new in targets) for old, targets in legacy.items()}


RENAMED_SETTINGS: dict[str, tuple[str, ...]] = {
    **_moved("teacher", TeacherConfig.LEGACY),
    **_moved("student", STUDENT_LEGACY),
    **_moved("relevance", RelevanceConfig.MOVED),
    **{  # the schedules were the sections themselves (``relevance.student.steps`` is now reranker.schedule.steps)
        f"relevance.{old}.{key}": (f"relevance.{new}.schedule.{key}",)
        for old, new in RelevanceConfig.SCHEDULE_SECTIONS.items()
        for key in Schedule.model_fields
    },
    **{f"index.{old}": (f"index.milvus.{new}",) for old, new in IndexConfig.LEGACY.items()},
}
"""Settings that moved (the flat ``align_steps`` became ``align.steps`` when steps got one ``Schedule``), from
the same tables the config reads old files with: a record written before the move is read as if written after."""


def teacher_settings(config: RunConfig) -> dict[str, Any]:
    """The teacher depends on the data (files, columns, split, label scale) and its own section."""
    settings = {"data": config.data.model_dump(mode="json"), "teacher": config.teacher.model_dump(mode="json")}
    labels = config.teacher.cross_encoder_labels
    if labels.weight > 0 and labels.model is None:  # the step trains its own labeller with these
        settings["relevance"] = relevance_teacher_settings(config)["relevance"]
    return settings


def index_settings(config: RunConfig) -> dict[str, Any]:
    """The index section, less what does not change this index: another kind's settings (a FAISS index does
    not depend on the Milvus ones, an exact one on the HNSW ones) and the Milvus token. How the catalog was
    encoded (the ``encoding`` section) is not a setting of the index: ONNX float32 and PyTorch agree, and
    batches and workers do not change the embeddings."""
    exclude: dict[str, Any] = {"milvus": {"token"}}
    fields = type(config.index).model_fields
    for kind, prefixes in (("milvus", ("milvus",)), ("hnsw", ("hnsw_",)), ("ivfpq", ("ivf_", "pq_"))):
        if config.index.kind != kind:  # another kind's knobs do not change this index (the serving graph reads hnsw_*)
            exclude |= {name: True for name in fields if name.startswith(prefixes)}
    return {"index": config.index.model_dump(mode="json", exclude=exclude)}


POOL_EXECUTION = {"synthetic_threads", "synthetic_executor", "synthetic_workers"}
"""How the pool's texts are written, not what they are: the same queries on any executor and thread count."""


def align_settings(config: RunConfig, student: StudentConfig) -> dict[str, Any]:
    """Everything of the student but its refinement, plus the alignment pool and checkpoint selection.

    A static student also records the version of the code that distils its table (``TABLE_VERSION``): a fix
    that changes the table's rows changes no setting, and without it an upgraded toolkit would call the
    student made by the old code current.
    """
    settings = {
        "student": student.model_dump(mode="json", exclude={"refine"}),
        "pool": config.pool.model_dump(mode="json", exclude=POOL_EXECUTION),
        "selection": config.selection.model_dump(mode="json"),
    }
    if student.kind == "static":
        settings["static_table_version"] = TABLE_VERSION
    return settings


def refine_settings(config: RunConfig, student: StudentConfig) -> dict[str, Any]:
    """The student's refinement (what it starts from is the aligned student's own record)."""
    return {
        "student": student.model_dump(mode="json", include={"name", "kind", "refine"}),
        "teacher.negatives": config.teacher.model_dump(include={"negatives_from_rank", "negatives_to_rank"}),
        "selection": config.selection.model_dump(mode="json"),
    }


RELEVANCE_TEACHER_KEYS = ("retriever", "candidates_k", "max_length", "seed", "teacher")
RERANKER_KEYS = ("reranker", "distil_queries", "augment_queries", "augment_k", "extra_unlabeled", "list_size")


def relevance_teacher_settings(config: RunConfig) -> dict[str, Any]:
    """The cross-encoder teacher: the data, its own section and how candidates are retrieved."""
    return {
        "data": config.data.model_dump(mode="json"),
        "relevance": config.relevance.model_dump(mode="json", include=set(RELEVANCE_TEACHER_KEYS)),
    }


def reranker_settings(config: RunConfig) -> dict[str, Any]:
    """A distilled re-ranker: labelling, augmentation and the re-ranker's own section."""
    keys = {*RERANKER_KEYS, "max_length", "seed"}
    return {"relevance": config.relevance.model_dump(mode="json", include=keys)}


def fingerprint(settings: dict[str, Any], inputs: dict[str, str | None]) -> str:
    """A short content hash of a step's settings and its inputs' fingerprints."""
    payload = json.dumps({"settings": settings, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def write_record(
    folder: Path, settings: dict[str, Any], inputs: dict[str, str | None], extra: dict[str, Any] | None = None
) -> str:
    """Write the record into ``folder`` (call it inside the step's atomic write); returns the fingerprint.
    ``extra`` is kept beside it (e.g. the catalog updates an index received) and changes no fingerprint."""
    value = fingerprint(settings, inputs)
    record = {"fingerprint": value, "settings": settings, "inputs": inputs, **(extra or {})}
    (Path(folder) / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return value


def read_record(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / RECORD_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def recorded_fingerprint(folder: Path) -> str | None:
    record = read_record(folder)
    return record.get("fingerprint") if record else None


def stale_reason(folder: Path, settings: dict[str, Any], inputs: dict[str, str | None]) -> str | None:
    """Why the artifact in ``folder`` no longer matches ``settings`` and ``inputs``; None when it does.

    An artifact written before records existed has no record: it is kept (``--force`` redoes it).
    """
    record = read_record(folder)
    if record is None or record.get("fingerprint") == fingerprint(settings, inputs):
        return None
    changed = _changed_keys(_upgraded(_renamed(record.get("settings", {})), settings), settings)
    changed += [
        f"its input {name!r} was redone"
        for name, value in inputs.items()
        if record.get("inputs", {}).get(name) != value
    ]
    return "; ".join(changed) or None  # only upgrades differ: the artifact is what this version would make


def _renamed(recorded: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` with every setting of ``RENAMED_SETTINGS`` moved to its new place(s)."""
    out = json.loads(json.dumps(recorded))  # a deep copy
    for old, targets in RENAMED_SETTINGS.items():
        *parents, leaf = old.split(".")
        holder = out
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or leaf not in holder:
            continue
        value = holder.pop(leaf)
        for target in targets:
            *path, key = target.split(".")
            node = out
            for part in path:
                node = node.setdefault(part, {})
            node.setdefault(key, value)
    return out


def _upgraded(recorded: dict[str, Any], current: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A record's settings as this version would write them for the same artifact: settings the step no
    longer reads are dropped, and settings added since (``ADDED_SETTINGS``) take their reproducing value."""
    out: dict[str, Any] = {}
    for key, value in recorded.items():
        if key not in current:
            continue
        if isinstance(value, dict) and isinstance(current[key], dict):
            value = _upgraded(value, current[key], f"{prefix}{key}.")
        out[key] = value
    for key in current:
        if key not in recorded and f"{prefix}{key}" in ADDED_SETTINGS:
            out[key] = ADDED_SETTINGS[f"{prefix}{key}"]
    return out


def must_redo(
    label: str, folder: Path, present: bool, settings: dict[str, Any], inputs: dict[str, str | None], force: bool
) -> bool:
    """Whether a step must run: forced, its output missing, or made with other settings or inputs (said why)."""
    from harnesslm.run.run_dir import console  # the console lives with the run directory

    if force or not present:
        return True
    reason = stale_reason(folder, settings, inputs)
    if reason:
        console.print(f"[yellow]{label}: redone, because {reason}", soft_wrap=True)
        return True
    console.print(f"[dim]{label}: current, skipped")
    return False


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``section.key old -> new`` for every leaf that differs (at most a few, then a count)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out if len(out) <= 5 else [*out[:5], f"and {len(out) - 5} more settings"]
    if old == new:
        return []
    return [f"{prefix[:-1]} {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def step_inputs(run: RunDir, step: str, student: StudentConfig | None = None) -> tuple[dict, dict]:
    """The settings a step depends on and the fingerprints of the artifacts it reads (see ``provenance``)."""
    config = run.config
    teacher_fp = recorded_fingerprint(run.teacher_dir)
    index_fp = recorded_fingerprint(run.index_dir)
    if step == "teacher":
        labeller = config.teacher.cross_encoder_labels
        if labeller.weight > 0 and labeller.model is not None:  # a cross-encoder folder retrained in place counts
            return teacher_settings(config), {"labeller": recorded_fingerprint(Path(labeller.model))}
        return teacher_settings(config), {}
    if step == "index":
        return index_settings(config), {"teacher": teacher_fp}
    if student is None:
        raise ValueError(f"step {step!r} needs a student")
    if step == "align":
        return align_settings(config, student), {"teacher": teacher_fp, "index": index_fp}
    aligned_fp = recorded_fingerprint(run.student_dir(student.name, "aligned"))
    return refine_settings(config, student), {"aligned": aligned_fp, "index": index_fp}

"""The whole recipe in order, skipping steps whose outputs are present and still valid."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from harnesslm.config import ConfigError, RunConfig, StudentConfig
from harnesslm.demo.shop import write_demo_shop
from harnesslm.models.bundled import resolve_model
from harnesslm.pipeline import steps
from harnesslm.pipeline.bench import bench
from harnesslm.pipeline.evaluate import evaluate
from harnesslm.pipeline.relevance import relevance
from harnesslm.report.markdown import write_report
from harnesslm.run import provenance
from harnesslm.run.run_dir import RunDir, console
from harnesslm.students.meta import read_student_meta
from harnesslm.students.truncated import transformer_layer_count


def run_recipe(config: RunConfig, root: Path, force: bool = False, progress: bool = True) -> RunDir:
    """prepare -> teacher -> index -> align -> refine -> evaluate -> bench [-> relevance] -> report.

    Without ``force``, a step is skipped when its output exists and matches what it depends on: the record
    it wrote (:mod:`~harnesslm.run.provenance`) names the same settings and inputs, the index is in the
    current teacher's space, and each student was trained against that teacher. Otherwise it is redone, and
    so is every step after it. Outputs are written atomically, so an interrupted run resumes at its step.
    """
    root = Path(root)
    check_student_layers(config)
    run = RunDir(root, config)
    same_data = run.config_path.exists() and RunDir(root).config.data == config.data
    if force or not same_data or not (run.data_dir / "test.parquet").exists():
        run = steps.prepare(config, root)
    else:
        run.save_config()
        console.print("[dim]prepare: data already prepared, skipped")
    if _redo(run, "teacher", run.teacher_dir, force, (run.teacher_dir / "modules.json").exists()):
        steps.teacher(run, progress)
    if _redo(run, "index", run.index_dir, force, _index_is_current(run)):
        steps.build_index(run, progress)
    stale = [
        s.name
        for s in run.students()
        if _redo(run, "align", run.student_dir(s.name, "aligned"), force, _student_is_current(run, s, "aligned"), s)
    ]
    if stale:
        steps.align(run, stale, progress)
    stale = [
        s.name
        for s in run.students()
        if s.name in stale
        or _redo(run, "refine", run.student_dir(s.name, "refined"), force, _student_is_current(run, s, "refined"), s)
    ]
    if stale:
        steps.refine(run, stale, progress)
    evaluate(run, progress=progress)
    bench(run)
    if run.config.relevance.enabled:
        relevance(run, force=force, progress=progress)
    write_report(run)
    return run


def check_student_layers(config: RunConfig) -> None:
    """Refuse a truncated student that keeps more layers than its base has, before anything is trained.

    Read from the base's ``config.json`` when the model is on disk (bundled or a local folder); a hub model is
    checked when ``align`` loads it.
    """
    for student in config.students:
        if student.kind != "truncated":
            continue
        base = student.base or config.teacher.model
        total = transformer_layer_count(Path(resolve_model(base, config.cache_dir)))
        wanted = max([student.layers, *student.layer_schedule])
        if total is not None and wanted > total:
            raise ConfigError(
                f"student {student.name!r} keeps {wanted} layers, but its base {base} has {total}: "
                f"set layers (and layer_schedule) to at most {total}"
            )


def _redo(
    run: RunDir, step: str, folder: Path, force: bool, present: bool, student: StudentConfig | None = None
) -> bool:
    label = f"{step} {student.name!r}" if student else step
    return provenance.must_redo(label, folder, present, *provenance.step_inputs(run, step, student), force)


def _index_is_current(run: RunDir) -> bool:
    if not (run.index_dir / "meta.json").exists():
        return False
    return run.index.meta.space == run.teacher_space


def _student_is_current(run: RunDir, student: StudentConfig, phase: str) -> bool:
    meta = read_student_meta(run.student_dir(student.name, phase))
    return meta is not None and meta.teacher_space == run.teacher_space


def demo_config(data_dir: Path, rerank: bool = False) -> RunConfig:
    """Settings sized so the demo finishes within 5 minutes on 2 CPU cores (``harnesslm/demo/config.yaml``).

    Writes the demo shop into ``data_dir`` and points the config's data at its files. ``rerank`` adds the
    re-ranking stage (a cross-encoder relevance teacher distilled into a small re-ranker), about two minutes
    more. On the demo shop its small re-rankers rank worse than the retriever alone, and the report says so.
    """
    raw = yaml.safe_load((resources.files("harnesslm.demo") / "config.yaml").read_text(encoding="utf-8"))
    written = write_demo_shop(data_dir, **raw.pop("shop"))
    data = raw["data"]
    data["catalog"]["path"] = written["catalog"]
    data["judgments"] = {**data.get("judgments", {}), "path": written["judgments"]}
    data["extra_queries"] = [{"path": written["unlabeled_queries"]}]
    raw.setdefault("relevance", {})["enabled"] = rerank
    return RunConfig.model_validate(raw)

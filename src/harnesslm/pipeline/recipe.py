"""The whole recipe in order, skipping steps whose outputs are present and still valid."""

from __future__ import annotations

from pathlib import Path

from harnesslm.config import RelevanceConfig, RunConfig, StudentConfig, TeacherConfig
from harnesslm.data.demo import write_demo_shop
from harnesslm.models.students import read_student_meta
from harnesslm.pipeline import steps
from harnesslm.pipeline.bench import bench
from harnesslm.pipeline.evaluate import evaluate
from harnesslm.pipeline.relevance import relevance
from harnesslm.pipeline.report import write_report
from harnesslm.pipeline.run_dir import RunDir, console


def run_recipe(config: RunConfig, root: Path, force: bool = False, progress: bool = True) -> RunDir:
    """prepare -> teacher -> index -> align -> refine -> evaluate -> bench [-> relevance] -> report.

    Without ``force``, a step is skipped when its output exists and matches what it depends on: the index
    must be in the current teacher's space, and each student must have been trained against that teacher.
    Outputs are written atomically, so an interrupted run resumes at the step it was in.
    """
    root = Path(root)
    run = RunDir(root, config)
    same_data = run.config_path.exists() and RunDir(root).config.data == config.data
    if force or not same_data or not (run.data_dir / "test.parquet").exists():
        run = steps.prepare(config, root)
    else:
        run.save_config()
        console.print("[dim]prepare: data already prepared, skipped")
    if force or not (run.teacher_dir / "modules.json").exists():
        steps.teacher(run, progress)
    else:
        console.print("[dim]teacher: already trained, skipped")
    if force or not _index_is_current(run):
        steps.build_index(run, progress)
    else:
        console.print("[dim]index: current, skipped")
    stale = [s.name for s in run.students() if force or not _student_is_current(run, s, "aligned")]
    if stale:
        steps.align(run, stale, progress)
    stale = [s.name for s in run.students() if force or not _student_is_current(run, s, "refined") or s.name in stale]
    if stale:
        steps.refine(run, stale, progress)
    evaluate(run, progress=progress)
    bench(run)
    if run.config.relevance.enabled:
        relevance(run, force=force, progress=progress)
    write_report(run)
    return run


def _index_is_current(run: RunDir) -> bool:
    if not (run.index_dir / "meta.json").exists():
        return False
    return run.index.meta.space == run.teacher_space


def _student_is_current(run: RunDir, student: StudentConfig, phase: str) -> bool:
    meta = read_student_meta(run.student_dir(student.name, phase))
    return meta.get("teacher_space") == run.teacher_space


def demo_config(data_dir: Path) -> RunConfig:
    """Settings sized so the demo finishes in a few minutes on 2 CPU cores."""
    files = write_demo_shop(data_dir, n_products=2000, n_queries=1200, n_unlabeled=1200)
    return RunConfig.model_validate(
        {
            "data": {
                "catalog": {"path": files["catalog"], "fields": ["brand", "category"]},
                "judgments": {"path": files["judgments"]},
                "extra_queries": [{"path": files["unlabeled_queries"]}],
            },
            "teacher": TeacherConfig(
                model="bundled:all-MiniLM-L6-v2",
                max_steps=40,
                batch_size=32,
                learning_rate=5e-5,
                max_seq_length=48,
            ).model_dump(),
            "students": [
                StudentConfig(name="static", kind="static", align_steps=300, refine_steps=150).model_dump(),
                StudentConfig(
                    name="truncated-2l",
                    kind="truncated",
                    layers=2,
                    align_steps=60,
                    refine_steps=40,
                    align_learning_rate=1e-4,
                    refine_learning_rate=3e-5,
                ).model_dump(),
            ],
            # The re-ranking stage, small: a MiniLM cross-encoder teacher and a 3-layer student re-ranker.
            "relevance": RelevanceConfig(
                enabled=True,
                retriever="static",
                candidates_k=30,
                teacher_steps=60,
                max_length=32,
                distil_queries=400,
                augment_queries=400,
                augment_k=8,
                student_steps=40,
                student_batch_size=8,
                latency_queries=50,
            ).model_dump(),
        }
    )

"""The recipe end to end on a small demo shop with a tiny random teacher: outputs, resumption, safety checks."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sentence_transformers import SentenceTransformer

from harnesslm.config import RunConfig, StaticStudentConfig, TruncatedStudentConfig, updated
from harnesslm.data.errors import DataError
from harnesslm.data.ood import product_group
from harnesslm.index.item_index import IndexMismatchError, ItemIndex
from harnesslm.models.fingerprint import model_fingerprint
from harnesslm.pipeline import steps
from harnesslm.pipeline.evaluate import TEACHER, TEACHER_BASE, evaluate
from harnesslm.pipeline.recipe import run_recipe
from harnesslm.report.model_card import judged_on
from harnesslm.run import provenance
from harnesslm.run.run_dir import RunDir, StepMissingError
from harnesslm.run.student_store import load_student
from harnesslm.students.meta import read_student_meta
from harnesslm.students.shop_tokens import used_token_ids
from harnesslm.students.truncated import transformer_layers


def small_config(demo_files: dict[str, Path], teacher: Path, cache: Path) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {
                "catalog": {"path": demo_files["catalog"]},
                "judgments": {"path": demo_files["judgments"]},
                "extra_queries": [{"path": demo_files["unlabeled_queries"]}],
                "split": [0.6, 0.2, 0.2],
            },
            "teacher": {"model": str(teacher), "schedule": {"steps": 4, "batch_size": 8, "learning_rate": 1e-3}},
            "students": [
                {
                    "name": "static",
                    "kind": "static",
                    "pca_dims": 16,
                    "align": {"steps": 20, "batch_size": 32},
                    "refine": {"steps": 10, "batch_size": 16},
                },
                {
                    "name": "trunc",
                    "kind": "truncated",
                    "layers": 1,
                    "layer_schedule": [2],  # progressive layer dropping: align at 2 layers, then drop to 1
                    "align": {"steps": 4, "batch_size": 16},
                    "refine": {"steps": 4, "batch_size": 8},
                },
            ],
            "bench": {"latency_queries": 10, "warmup": 2, "throughput_batch_size": 16},
            "cache_dir": str(cache),
        }
    )


@pytest.fixture(scope="module")
def finished_run(demo_files, tiny_teacher, tmp_path_factory) -> RunDir:
    root = tmp_path_factory.mktemp("run")
    return run_recipe(small_config(demo_files, tiny_teacher, root / "cache"), root / "run", progress=False)


def test_recipe_writes_every_artifact(finished_run: RunDir) -> None:
    root = finished_run.root
    for relative in (
        "config.yaml",
        "data/train.parquet",
        "data/test.parquet",
        "teacher/modules.json",
        "index/index.faiss",
        "baselines/static-untrained/modules.json",
        "students/static/aligned/modules.json",
        "students/static/refined/modules.json",
        "students/trunc/refined/modules.json",
        "metrics.json",
        "bench.json",
        "timings.json",
        "report.md",
    ):
        assert (root / relative).exists(), relative
    assert not [p for p in root.rglob(".*") if p.name.startswith(".") and p.name != ".gitignore"]


def test_splits_are_disjoint_by_query(finished_run: RunDir) -> None:
    queries = {name: set(finished_run.split(name)["query"]) for name in ("train", "validation", "test")}
    assert not queries["train"] & queries["test"]
    assert not queries["train"] & queries["validation"]
    assert not queries["validation"] & queries["test"]
    pool = set(finished_run.query_pool())
    assert not pool & queries["test"], "held-out queries must never be used for alignment"


def test_metrics_cover_teacher_students_and_baselines(finished_run: RunDir) -> None:
    metrics = json.loads((finished_run.root / "metrics.json").read_text())
    systems = metrics["systems"]
    expected = {
        "BM25",
        TEACHER_BASE,  # its catalog pass was made to mine the teacher's hard negatives (cached)
        TEACHER,
        "static, untrained (own index)",
        "static (aligned)",
        "static (refined)",
        "trunc (aligned)",
        "trunc (refined)",
    }
    assert expected <= set(systems)
    assert systems[TEACHER]["ndcg_recovery_%"] == pytest.approx(100.0)
    for values in systems.values():
        assert 0.0 <= values["ndcg@10"] <= 1.0
        assert 0.0 <= values["recall@100"] <= 1.0
    report = (finished_run.root / "report.md").read_text()
    assert "NDCG@10" in report and "p50 ms" in report and "static (refined)" in report


def _within(interval: list[float], value: float) -> bool:
    return interval[0] - 1e-9 <= value <= interval[1] + 1e-9


def test_bm25_negatives_make_no_catalog_pass_with_the_untrained_teacher(
    tmp_path: Path, demo_files, tiny_teacher
) -> None:
    """With ``negatives_from: bm25`` nothing encodes the catalog with the off-the-shelf teacher, and its report row
    is left out; listing it as a baseline makes that pass, and then it is a row (and stays one, cached)."""
    config = updated(
        small_config(demo_files, tiny_teacher, tmp_path / "cache"),
        {
            "teacher": {"negatives_from": "bm25", "schedule": {"steps": 2}},
            "evaluation": {"baselines": ["bm25"]},
            "index": {"encode_backend": "onnx"},  # auto keeps PyTorch for a catalog this small
        },
    )
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    steps.teacher(run, progress=False)
    steps.build_index(run, progress=False)
    base_cache = _document_cache(run.base_teacher, run)
    assert not base_cache.exists()
    assert (run.root / "lexical").is_dir(), "the negatives' BM25 index is the run's lexical index"
    assert TEACHER_BASE not in evaluate(run, progress=False)["systems"]
    exports = [p.name for p in (run.cache_dir.parent / "onnx").iterdir()]
    assert exports == [f"{run.teacher_space}-{run.teacher.max_seq_length}"], "the index was encoded through ONNX"

    asked = updated(run.config, {"evaluation": {"baselines": ["bm25", "teacher-off-the-shelf"]}})
    assert TEACHER_BASE in evaluate(RunDir(run.root, asked), progress=False)["systems"]
    assert base_cache.exists()
    assert TEACHER_BASE in evaluate(RunDir(run.root), progress=False)["systems"], "cached now: a row unasked"


def test_static_negatives_make_no_catalog_pass_with_the_untrained_teacher(
    tmp_path: Path, demo_files, tiny_teacher
) -> None:
    config = updated(
        small_config(demo_files, tiny_teacher, tmp_path / "cache"),
        {"teacher": {"negatives_from": "static", "schedule": {"steps": 2}}, "evaluation": {"baselines": ["bm25"]}},
    )
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    queries = list(dict.fromkeys(run.split("train")["query"]))[:20]
    positives = {q: set() for q in queries}
    negatives = steps.hard_negatives(run, run.base_teacher, queries, positives, progress=False)
    assert [len(n) for n in negatives] == [1] * len(queries)
    assert not _document_cache(run.base_teacher, run).exists(), "no catalog pass with the untrained teacher"
    steps.teacher(run, progress=False)
    assert (run.teacher_dir / "modules.json").exists()


def test_cross_encoder_labels_give_the_teacher_the_labellers_margins(
    tmp_path: Path, demo_files, tiny_teacher, capsys
) -> None:
    """The Walmart recipe in the teacher step: the labeller scores each row's positive and negatives once, the
    rows carry its standardised margins, and the teacher trains on them."""
    from datasets import Dataset

    from harnesslm.pipeline.teacher import cross_encoder_labelled
    from harnesslm.rerank.models import load_cross_encoder, score_pairs

    labeller = tmp_path / "labeller"
    load_cross_encoder(str(tiny_teacher), max_length=16).save_pretrained(str(labeller))
    patch = {"schedule": {"steps": 2}, "cross_encoder_labels": {"weight": 0.5, "model": str(labeller)}}
    config = updated(small_config(demo_files, tiny_teacher, tmp_path / "cache"), {"teacher": patch})
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    texts = list(run.item_texts.values())[:3]
    rows = Dataset.from_dict({"anchor": ["drill"] * 2, "positive": texts[:2], "negative_1": [texts[2]] * 2})
    labelled = cross_encoder_labelled(run, rows, str(labeller), progress=False)
    scores = score_pairs(
        load_cross_encoder(str(labeller), run.config.relevance.max_length),
        ["drill"] * 4,
        [texts[0], texts[2], texts[1], texts[2]],
    ).numpy()
    expected = 2.5 * (scores[[0, 2]] - scores[[1, 3]]) / scores.std()
    assert np.allclose(np.array(labelled["label"]).ravel(), expected, atol=1e-3)  # batches pad differently
    steps.teacher(run, progress=False)
    assert (run.teacher_dir / "modules.json").exists()
    assert "cross-encoder labels: scoring" in capsys.readouterr().err
    assert provenance.stale_reason(run.teacher_dir, *provenance.step_inputs(run, "teacher")) is None
    provenance.write_record(labeller, {"retrained": True}, {})  # the labeller's folder holds another model now
    assert provenance.stale_reason(run.teacher_dir, *provenance.step_inputs(run, "teacher")), "the teacher is stale"


def test_without_a_labeller_the_teacher_step_trains_one_and_keeps_it(tmp_path: Path, demo_files, tiny_teacher) -> None:
    """``cross_encoder_labels.model`` unset: the step trains a cross-encoder on the training judgments (negatives
    from the ranking that mines the teacher's), saves it with its record, and reuses it while nothing changed."""
    from harnesslm.pipeline.teacher import LABELLER_DIR, labeller_path

    config = updated(
        small_config(demo_files, tiny_teacher, tmp_path / "cache"),
        {
            "teacher": {"negatives_from": "bm25", "schedule": {"steps": 2}, "cross_encoder_labels": {"weight": 0.5}},
            "relevance": {"teacher": {"model": str(tiny_teacher), "schedule": {"steps": 2, "batch_size": 8}}},
        },
    )
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    steps.teacher(run, progress=False)
    folder = run.root / LABELLER_DIR
    assert (folder / "config.json").exists() and (folder / "professional_terms.json").exists()
    assert (run.teacher_dir / "modules.json").exists()
    record = provenance.read_record(run.teacher_dir)
    assert record["settings"]["relevance"]["teacher"]["schedule"]["steps"] == 2, "the labeller's settings count"
    made = (folder / "model.safetensors").stat().st_mtime_ns
    queries = list(dict.fromkeys(run.split("train")["query"]))
    assert labeller_path(run, run.base_teacher, queries, progress=False) == str(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == made, "kept while its settings are unchanged"
    changed = RunDir(run.root, updated(run.config, {"relevance": {"teacher": {"negatives": 1}}}))
    labeller_path(changed, run.base_teacher, queries, progress=False)
    assert (folder / "model.safetensors").stat().st_mtime_ns != made, "retrained when they change"


def test_teacher_negatives_encode_the_catalog_with_the_untrained_teacher(finished_run: RunDir) -> None:
    assert finished_run.config.teacher.negatives_from == "teacher"  # the default
    assert _document_cache(finished_run.base_teacher, finished_run).exists()


def _document_cache(model, run: RunDir) -> Path:
    from harnesslm.encoding.cache import cache_path

    return cache_path(model, run.catalog["text"].tolist(), run.cache_dir, role="document")


def test_metrics_carry_confidence_intervals_and_agreement(finished_run: RunDir) -> None:
    metrics = json.loads((finished_run.root / "metrics.json").read_text())
    systems = metrics["systems"]
    assert metrics["bootstrap"] == {"resamples": 1000, "confidence": 0.95, "seed": 0}
    for name, values in systems.items():
        assert _within(values["ndcg@10_ci"], values["ndcg@10"]), name
        assert _within(values["recall@100_ci"], values["recall@100"]), name
        for key in ("ndcg_recovery", "recall_recovery"):
            if not math.isnan(values[f"{key}_%"]):
                assert _within(values[f"{key}_ci_%"], values[f"{key}_%"]), name
        assert 0.0 <= values["top10_overlap"] <= 1.0
        has_cosine = values["role"] == "student"
        assert ("cosine_mean" in values) == has_cosine, name
        if has_cosine:
            assert -1.0 - 1e-6 <= values["cosine_worst_decile"] <= values["cosine_p10"] + 1e-9
            assert values["cosine_worst_decile"] <= values["cosine_mean"] <= 1.0 + 1e-6
    assert systems[TEACHER]["top10_overlap"] == 1.0
    assert systems[TEACHER]["ndcg_recovery_ci_%"] == pytest.approx([100.0, 100.0])

    worst = metrics["worst_queries"]
    students = {name for name, values in systems.items() if values["role"] == "student" and "onnx" not in name}
    assert set(worst) == students
    test_queries = set(finished_run.split("test")["query"])
    for rows in worst.values():
        assert len(rows) == min(20, metrics["queries"])
        assert {row["query"] for row in rows} <= test_queries
        gaps = [row["teacher_ndcg@10"] - row["student_ndcg@10"] for row in rows]
        assert gaps == sorted(gaps, reverse=True)

    report = (finished_run.root / "report.md").read_text()
    ndcg, (lo, hi) = systems[TEACHER]["ndcg@10"], systems[TEACHER]["ndcg@10_ci"]
    assert f"{ndcg:.4f} [{lo:.4f}, {hi:.4f}]" in report
    assert "## Where the students lose most" in report
    assert "### static (refined)" in report and "### static (aligned)" not in report


def test_bench_reports_latency_and_ratios(finished_run: RunDir) -> None:
    bench = json.loads((finished_run.root / "bench.json").read_text())
    assert bench["threads"]["torch_num_threads"] == 2
    teacher = bench["encoders"]["teacher"]
    assert teacher["latency_speedup_p50"] == pytest.approx(1.0)
    for values in bench["encoders"].values():
        lat = values["latency"]
        assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
        assert values["queries_per_s"] > 0


def test_saved_student_loads_alone_and_searches_teacher_index(finished_run: RunDir) -> None:
    folder = finished_run.student_dir("static", "refined")
    student = SentenceTransformer(str(folder), device="cpu")
    index = ItemIndex.load(finished_run.index_dir)
    meta = read_student_meta(folder)
    index.check_space(meta.teacher_space)
    query = finished_run.split("test")["query"].iloc[0]
    embedding = student.encode([query], normalize_embeddings=True)
    assert embedding.shape[1] == index.meta.dim
    ids, scores = index.search(embedding, 5)
    assert len(ids[0]) == 5 and set(ids[0]) <= set(finished_run.catalog["item_id"])
    assert np.all(np.diff(scores[0]) <= 1e-6)


def test_pool_holds_every_enabled_source(finished_run: RunDir) -> None:
    pool = finished_run.read_json("pool.json")
    sources = pool["sources"]
    assert set(sources) == {"train_queries", "extra_queries", "catalog_texts", "pseudo_queries"}
    assert sources["catalog_texts"]["kept"] > 0 and sources["pseudo_queries"]["kept"] > 0
    assert sources["catalog_texts"]["targets"] == "index"  # the tiny teacher has no prompts: targets are free
    assert pool["size"] == sum(s["kept"] for s in sources.values())
    held_out = set(finished_run.split("validation")["query"]) | set(finished_run.split("test")["query"])
    assert sources["train_queries"]["kept"] == finished_run.split("train")["query"].nunique()
    assert held_out  # and none of them is aligned on: checked on the pool itself
    run_pool = steps.alignment_pool(finished_run, finished_run.teacher, progress=False)
    assert not held_out & set(run_pool.texts)
    assert run_pool.targets.shape == (len(run_pool), finished_run.index.meta.dim)


def test_synthetic_source_writes_once_per_item_and_caches(finished_run: RunDir, monkeypatch, tmp_path: Path) -> None:
    from harnesslm.pool import synthetic_queries

    written: list[str] = []

    class FakeWriter:
        def __init__(self, examples, **kwargs) -> None:
            assert examples and all(isinstance(q, str) and isinstance(t, str) for q, t in examples)

        def write(self, title: str, per_item: int) -> list[str]:
            written.append(title)
            return [f"synthetic {len(written)}", "synthetic shared"][:per_item]

    model_file = tmp_path / "fake.gguf"
    model_file.write_bytes(b"gguf")
    monkeypatch.setattr(synthetic_queries, "QueryWriter", FakeWriter)
    monkeypatch.setattr(synthetic_queries, "locate_smollm2", lambda: model_file)
    config = updated(finished_run.config, {"pool": {"synthetic_items": 5}})
    run = RunDir(finished_run.root, config)
    pool = steps.alignment_pool(run, finished_run.teacher, progress=False)
    assert len(written) == 5
    assert pool.sources["synthetic_queries"]["offered"] == 6  # 5 own queries + one shared by all, deduplicated
    assert "synthetic shared" in pool.texts and "synthetic 3" in pool.texts
    config = updated(config, {"pool": {"synthetic_items": 8}})  # a larger amount writes only the 3 new items
    steps.alignment_pool(RunDir(finished_run.root, config), finished_run.teacher, progress=False)
    assert len(written) == 8


def test_each_phase_keeps_its_best_validation_checkpoint(finished_run: RunDir) -> None:
    selection = finished_run.read_json("selection.json")
    for name in ("static", "trunc"):
        aligned = selection["students"][name]["aligned"]
        refined = selection["students"][name]["refined"]
        assert aligned["validation_ndcg@10"] >= aligned["validation_ndcg@10_start"]
        assert aligned["validation_ndcg@10"] == max(score for _, score in aligned["history"])
        # refinement starts from the kept aligned student and never ends below it
        assert refined["validation_ndcg@10_start"] == pytest.approx(aligned["validation_ndcg@10"], abs=1e-6)
        assert refined["validation_ndcg@10"] >= refined["validation_ndcg@10_start"]
        meta = read_student_meta(finished_run.student_dir(name, "refined"))
        assert meta.selection["kept"] == refined["kept"]
    # progressive layer dropping: two alignment stages, 2 then 1 layers, and the saved student has 1
    stages = selection["students"]["trunc"]["aligned"]["stages"]
    assert [s["layers"] for s in stages] == [2, 1]
    student = SentenceTransformer(str(finished_run.student_dir("trunc", "aligned")), device="cpu")
    assert len(student[0].auto_model.encoder.layer) == 1
    assert "static_untrained_own_index_validation_ndcg@10" in selection
    # the distilled static table is cached by teacher weights and PCA size, so re-aligning does not re-distil
    # (other tests of this module may add tables of other settings to the same cache)
    cached = {p.name for p in (finished_run.cache_dir.parent / "static").iterdir()}
    assert f"{finished_run.teacher_space}-pca16" in cached
    # the kept students really score what selection.json says on validation
    scorer = steps.validation_scorer(finished_run)
    assert scorer(student) == pytest.approx(selection["students"]["trunc"]["aligned"]["validation_ndcg@10"], abs=1e-4)


def test_second_run_skips_finished_steps(finished_run: RunDir, demo_files, tiny_teacher) -> None:
    config = finished_run.config
    teacher_before = model_fingerprint(SentenceTransformer(str(finished_run.teacher_dir), device="cpu"))
    student_file = finished_run.student_dir("static", "refined") / "model.safetensors"
    mtime = student_file.stat().st_mtime_ns
    run_recipe(config, finished_run.root, progress=False)
    assert model_fingerprint(SentenceTransformer(str(finished_run.teacher_dir), device="cpu")) == teacher_before
    assert student_file.stat().st_mtime_ns == mtime, "a finished student must not be retrained"


def test_stale_student_is_refused_by_a_new_index(finished_run: RunDir, tmp_path: Path) -> None:
    meta = read_student_meta(finished_run.student_dir("static", "refined"))
    index = ItemIndex.load(finished_run.index_dir)
    with pytest.raises(IndexMismatchError, match="rebuild the index"):
        index.check_space(meta.teacher_space[::-1])


def test_evaluate_any_judged_file_with_custom_columns(finished_run: RunDir, tmp_path: Path) -> None:
    run = RunDir(shutil.copytree(finished_run.root, tmp_path / "run"))  # the shared run keeps its own metrics
    run.update_json("metrics.json", {"stale_block": {"from": "an earlier evaluation"}})
    test = run.split("test")
    custom = pd.DataFrame({"q": test["query"], "sku": test["item_id"], "grade": test["label"]})
    path = tmp_path / "my_judgments.jsonl"
    custom.to_json(path, orient="records", lines=True)
    result = evaluate(
        run,
        path,
        {"query_column": "q", "item_column": "sku", "label_column": "grade"},
        progress=False,
    )
    assert result["judgments"] == str(path)
    assert result["queries"] == test["query"].nunique()
    assert run.read_json("metrics.json") == json.loads(json.dumps(result, default=float))  # replaced whole
    assert judged_on(run.read_json("metrics.json")) == f"On {result['queries']:,} queries judged in {path} " + (
        "(given to `harness evaluate --judgments`)."
    )
    assert judged_on({"queries": 838, "judgments": "test split"}) == (
        "On the run's 838 test queries, on which no choice was made."
    )


def test_steps_need_their_inputs(tmp_path: Path, demo_files, tiny_teacher) -> None:
    run = steps.prepare(small_config(demo_files, tiny_teacher, tmp_path / "cache"), tmp_path / "run")
    with pytest.raises(StepMissingError, match="harness teacher"):
        steps.build_index(run, progress=False)
    with pytest.raises(StepMissingError, match="not a run directory"):
        RunDir(tmp_path / "nowhere")


def test_rerun_redoes_exactly_the_steps_whose_settings_changed(finished_run: RunDir, tmp_path: Path, capsys) -> None:
    root = tmp_path / "copy"
    shutil.copytree(finished_run.root, root)
    run = RunDir(root)

    def stamp(folder: Path) -> int:
        return (folder / "model.safetensors").stat().st_mtime_ns

    teacher = stamp(run.teacher_dir)
    static = {p: stamp(run.student_dir("static", p)) for p in ("aligned", "refined")}
    trunc = {p: stamp(run.student_dir("trunc", p)) for p in ("aligned", "refined")}
    two_layers = run.config.students[1].model_copy(update={"layers": 2, "layer_schedule": []})
    config = run.config.model_copy(update={"students": [run.config.students[0], two_layers]})
    capsys.readouterr()
    run_recipe(config, root, progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert stamp(run.teacher_dir) == teacher, "the teacher's settings did not change"
    assert {p: stamp(run.student_dir("static", p)) for p in static} == static
    assert all(stamp(run.student_dir("trunc", p)) != trunc[p] for p in trunc), "both phases follow the change"
    assert "align 'trunc': redone" in said and "student.layers 1 -> 2" in said
    assert transformer_layers(load_student(RunDir(root), "trunc", "refined")) == 2

    config = updated(config, {"teacher": {"schedule": {"steps": 3}}})  # a changed teacher redoes all after it
    run_recipe(config, root, progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert "teacher: redone" in said and "teacher.schedule.steps 4 -> 3" in said
    assert stamp(run.teacher_dir) != teacher
    assert all(stamp(run.student_dir("static", p)) != static[p] for p in static)
    record = provenance.read_record(run.teacher_dir)
    assert record["settings"]["teacher"]["schedule"]["steps"] == 3


def test_stale_reason_names_each_changed_setting(tmp_path: Path) -> None:
    provenance.write_record(tmp_path, {"teacher": {"schedule": {"steps": 30}, "lr": 1e-5}}, {"data": "a"})
    same = {"teacher": {"schedule": {"steps": 30}, "lr": 1e-5}}
    assert provenance.stale_reason(tmp_path, same, {"data": "a"}) is None
    reason = provenance.stale_reason(tmp_path, {"teacher": {"schedule": {"steps": 5}, "lr": 1e-5}}, {"data": "b"})
    assert reason == "teacher.schedule.steps 30 -> 5; its input 'data' was redone"
    assert provenance.stale_reason(tmp_path / "unrecorded", {}, {}) is None  # legacy artifacts are kept


def test_records_of_earlier_versions_still_match(tmp_path: Path) -> None:
    """A setting added since (at the value that reproduces the old behaviour) or no longer read redoes nothing."""
    old = {"student": {"kind": "truncated", "layers": 2, "pca_dims": 256}}
    provenance.write_record(tmp_path, old, {"teacher": "t"})
    truncated = {"student": {"kind": "truncated", "layers": 2}}
    assert provenance.stale_reason(tmp_path, truncated, {"teacher": "t"}) is None
    assert provenance.stale_reason(tmp_path, {"student": {"kind": "truncated", "layers": 3}}, {"teacher": "t"}) == (
        "student.layers 2 -> 3"
    )
    provenance.write_record(tmp_path, {"student": {"kind": "static", "pca_dims": 256}}, {})
    static = {"student": {"kind": "static", "pca_dims": 256, "domain_vocabulary": 0}}
    assert provenance.stale_reason(tmp_path, static, {}) is None
    static["student"]["domain_vocabulary"] = 5000
    assert provenance.stale_reason(tmp_path, static, {}) == "student.domain_vocabulary 0 -> 5000"

    # written before steps had one Schedule: flat keys, one student seed, no warm-up recorded
    flat = {"student": {"kind": "static", "align_steps": 300, "align_learning_rate": 2e-3, "seed": 0}}
    provenance.write_record(tmp_path, flat, {})
    nested = {
        "student": {"kind": "static", "align": {"steps": 300, "learning_rate": 2e-3, "seed": 0, "warmup_ratio": 0.1}}
    }
    assert provenance.stale_reason(tmp_path, nested, {}) is None
    nested["student"]["align"]["steps"] = 500
    assert provenance.stale_reason(tmp_path, nested, {}) == "student.align.steps 300 -> 500"


def test_index_settings_leave_out_other_kinds_and_the_encoding_engine(tmp_path: Path) -> None:
    def config(**index) -> RunConfig:
        data = {"catalog": {"path": "c.csv"}, "judgments": {"path": "j.csv"}}
        return RunConfig.model_validate({"data": data, "index": index})

    exact = provenance.index_settings(config(kind="exact"))["index"]
    assert not [k for k in exact if k.startswith(("hnsw_", "ivf_", "pq_", "milvus_"))] and "encode_backend" not in exact
    hnsw = provenance.index_settings(config(kind="hnsw", hnsw_m=8))["index"]
    assert hnsw["hnsw_m"] == 8 and "ivf_nprobe" not in hnsw
    # a record written when an exact index still recorded every kind's knobs matches, whatever they are now
    old = {"index": {**exact, "hnsw_m": 32, "hnsw_ef_search": 128, "ivf_nprobe": 32, "encode_backend": "torch"}}
    provenance.write_record(tmp_path, old, {"teacher": "t"})
    now = provenance.index_settings(config(kind="exact", hnsw_m=4, encode_backend="onnx"))
    assert provenance.stale_reason(tmp_path, now, {"teacher": "t"}) is None


def test_align_settings_leave_out_the_other_kinds_keys() -> None:
    truncated = TruncatedStudentConfig(name="t", layers=2)
    static = StaticStudentConfig(name="s")
    config = RunConfig.model_validate(
        {"data": {"catalog": {"path": "c.csv"}, "judgments": {"path": "j.csv"}}, "students": [truncated, static]}
    )
    assert "pca_dims" not in provenance.align_settings(config, truncated)["student"]
    assert "layers" not in provenance.align_settings(config, static)["student"]
    assert provenance.align_settings(config, static)["student"]["domain_vocabulary"] == static.domain_vocabulary


def test_a_static_student_made_by_older_table_code_is_redone(tmp_path: Path, monkeypatch) -> None:
    """A fix to table distillation changes no setting: the table code's version in the record redoes it."""
    static, truncated = StaticStudentConfig(name="s"), TruncatedStudentConfig(name="t", layers=2)
    config = RunConfig.model_validate(
        {"data": {"catalog": {"path": "c.csv"}, "judgments": {"path": "j.csv"}}, "students": [static, truncated]}
    )
    assert "static_table_version" not in provenance.align_settings(config, truncated)
    written = provenance.align_settings(config, static)
    before = {key: value for key, value in written.items() if key != "static_table_version"}
    provenance.write_record(tmp_path, before, {"teacher": "t"})  # a record from before versions were recorded
    assert provenance.stale_reason(tmp_path, written, {"teacher": "t"}) is None

    monkeypatch.setattr(provenance, "TABLE_VERSION", written["static_table_version"] + 1)
    reason = provenance.stale_reason(tmp_path, provenance.align_settings(config, static), {"teacher": "t"})
    assert reason == f"static_table_version {written['static_table_version']} -> {written['static_table_version'] + 1}"


def test_training_metrics_go_to_the_run_log_not_the_terminal(finished_run: RunDir) -> None:
    log = (finished_run.root / "logs" / "run.log").read_text()
    assert "'loss'" in log and " align INFO harnesslm.training.trainer: step " in log


def test_terminal_summary_fits_80_columns_and_names_regressions(finished_run: RunDir, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harnesslm.cli.app import app
    from harnesslm.report.markdown import regressions

    result = CliRunner().invoke(app, ["report", str(finished_run.root)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "Quality on" in result.output and "Batch-1 query encoding" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    systems = {
        "static (aligned)": {"ndcg@10": 0.50},
        "static (refined)": {"ndcg@10": 0.48},
        "trunc (aligned)": {"ndcg@10": 0.40},
        "trunc (refined)": {"ndcg@10": 0.41},
    }
    rerank = {"systems": {"no re-ranker": {"ndcg@10": 0.5}, "cross-encoder teacher": {"ndcg@10": 0.38}}}
    lines = regressions({"systems": systems}, rerank)
    assert lines[0].startswith("## Stages that made results worse")
    assert any("static (refined): NDCG@10 0.4800 is below static (aligned)" in line for line in lines)
    assert not any("trunc (refined)" in line for line in lines)
    assert any("cross-encoder teacher" in line and "makes results worse" in line for line in lines)
    assert regressions({"systems": {k: v for k, v in systems.items() if "trunc" in k}}, None) == []


def test_an_empty_test_split_skips_evaluation_with_one_line(tmp_path: Path, demo_files, tiny_teacher, capsys) -> None:
    config = small_config(demo_files, tiny_teacher, tmp_path / "cache")
    config = updated(config, {"data": {"split": (0.8, 0.2, 0.0)}})  # the user evaluates on another file
    run = steps.prepare(config, tmp_path / "run")
    assert run.split("test").empty
    assert evaluate(run, progress=False) == {}
    assert "test split is empty" in " ".join(capsys.readouterr().err.split())
    assert not (run.root / "metrics.json").exists()


def test_index_force_re_encodes_the_catalog(finished_run: RunDir, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harnesslm.cli.app import app
    from harnesslm.encoding.cache import cache_path

    root = tmp_path / "copy"
    shutil.copytree(finished_run.root, root)
    run = RunDir(root)
    cached = cache_path(run.teacher, run.catalog["text"].tolist(), run.cache_dir)
    before = cached.stat().st_mtime_ns
    assert CliRunner().invoke(app, ["index", str(root)]).exit_code == 0
    assert cached.stat().st_mtime_ns == before, "without --force the cached embeddings are reused"
    result = CliRunner().invoke(app, ["index", str(root), "--force"])
    assert result.exit_code == 0, result.output
    assert cached.stat().st_mtime_ns != before


def test_index_options_are_kept_for_later_steps_but_the_token_is_not(finished_run: RunDir, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harnesslm.cli.app import app

    root = tmp_path / "copy"
    shutil.copytree(finished_run.root, root)
    result = CliRunner().invoke(app, ["index", str(root), "--kind", "hnsw", "--milvus-token", "s3cret"])
    assert result.exit_code == 0, result.output
    assert RunDir(root).config.index.kind == "hnsw" and RunDir(root).index.meta.kind == "hnsw"
    assert "s3cret" not in (root / "config.yaml").read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["index", str(root), "--pq-m", "7", "--kind", "ivfpq"])
    assert result.exit_code == 2 and "error" in result.output, "settings impossible for this catalog: one line"
    assert RunDir(root).config.index.kind == "hnsw", "a failed build keeps the config as it was"


def test_a_prompted_teacher_is_used_with_its_prompts_everywhere(tmp_path: Path, demo_files, tiny_teacher) -> None:
    """Items are indexed with the document prompt, queries (alignment targets, evaluation) use the query
    prompt, catalog texts used for alignment are encoded as queries, and students read raw queries."""
    config = updated(
        small_config(demo_files, tiny_teacher, tmp_path / "cache"),
        {"teacher": {"query_prompt": "Q: ", "document_prompt": "D: "}},
    )
    config = config.model_copy(update={"students": config.students[:1]})
    run = steps.prepare(config, tmp_path / "run")
    steps.teacher(run, progress=False)
    saved = SentenceTransformer(str(run.teacher_dir), device="cpu")
    assert saved.prompts["query"] == "Q: " and saved.prompts["document"] == "D: "  # saved with the teacher
    steps.build_index(run, progress=False)
    texts = run.catalog["text"].tolist()[:3]
    raw = run.teacher.encode([f"D: {t}" for t in texts], normalize_embeddings=True, convert_to_numpy=True)
    ids, _ = run.index.search(raw, 1)
    assert [found[0] for found in ids] == run.catalog["item_id"].tolist()[:3]
    pool = steps.alignment_pool(run, run.teacher, progress=False)
    assert pool.sources["catalog_texts"].get("targets") != "index"  # not the document embeddings
    row = pool.texts.index(texts[0])
    expected = run.teacher.encode([f"Q: {texts[0]}"], normalize_embeddings=True, convert_to_numpy=True)[0]
    np.testing.assert_allclose(pool.targets[row], expected, atol=1e-5)
    steps.align(run, progress=False)
    student = load_student(run, "static", "aligned")
    assert not any(student.prompts.values())  # students take the raw query


def test_a_static_student_takes_its_table_from_its_base_model(tmp_path: Path, finished_run, tiny_bert_builder) -> None:
    """``base`` distils the table from another model (its tokenizer, its width); the projection carries it into
    the teacher's space, and the run's untrained baseline stays the teacher's own table."""
    run = RunDir(Path(shutil.copytree(finished_run.root, tmp_path / "run")))
    base_path = tiny_bert_builder(tmp_path / "base", run.catalog["text"].tolist(), hidden=24, seed=1)
    base = SentenceTransformer(str(base_path), device="cpu")
    baseline = (run.static_baseline_dir / "model.safetensors").read_bytes()
    cfg = StaticStudentConfig(name="based", base=str(base_path), domain_vocabulary=0, align={"steps": 4})
    table = steps.distill_static_baseline(run, cfg)
    assert table.get_embedding_dimension() == 24  # the base's width, not the teacher's (32)
    words = set(base.tokenizer.get_vocab()) - set(base.tokenizer.all_special_tokens)
    assert words <= set(table.tokenizer.get_vocab())  # the base's tokens (model2vec reorders them)
    assert not set(run.teacher.tokenizer.get_vocab()) <= set(table.tokenizer.get_vocab())
    assert (run.static_baseline_dir / "model.safetensors").read_bytes() == baseline
    run.config.students.append(cfg)
    steps.align(run, ["based"], progress=False)
    student = load_student(run, "based", "aligned")
    queries = run.split("validation")["query"].tolist()[:4]
    assert student.encode(queries).shape == (4, run.teacher.get_embedding_dimension())
    assert student[0].get_embedding_dimension() == 24


def test_hybrid_rows_fuse_bm25_with_a_weight_chosen_on_validation(finished_run: RunDir) -> None:
    from harnesslm.evaluation.fusion_weight import WEIGHTS

    metrics = json.loads((finished_run.root / "metrics.json").read_text())
    hybrid = metrics["hybrid"]
    assert set(hybrid["weights"]) == {
        "teacher + BM25 (fine-tuned)",
        "static + BM25 (refined)",
        "trunc + BM25 (refined)",
    }
    assert hybrid["validation_queries"] > 0
    for name, chosen in hybrid["weights"].items():
        assert metrics["systems"][name]["role"] == "hybrid" and "ndcg@10_ci" in metrics["systems"][name]
        by_weight = {float(w): v for w, v in chosen["validation_ndcg@10"].items()}
        assert set(by_weight) == set(WEIGHTS)
        assert by_weight[chosen["weight"]] == max(by_weight.values())  # the best weight on validation


def test_html_report_plots_recovery_latency_and_load(finished_run: RunDir, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harnesslm.cli.app import app as cli

    bench = json.loads((finished_run.root / "bench.json").read_text())
    assert all(len(v["latency"]["percentiles_ms"]) == 99 for v in bench["encoders"].values())
    levels = [{"concurrency": c, "p50_ms": 1.0 * c, "p99_ms": 3.0 * c, "rps": 500.0 / c**0.5} for c in (1, 4, 16, 64)]
    load = tmp_path / "load.json"
    load.write_text(json.dumps({"settings": {"endpoint": "GET /search"}, "encoders": {"numpy": {"levels": levels}}}))
    result = CliRunner().invoke(cli, ["report", str(finished_run.root), "--html", "--load-test", str(load)])
    assert result.exit_code == 0, result.output
    page = (finished_run.root / "report.html").read_text()
    assert page.count("<svg") == 3  # recovery, latency distributions, load test
    assert "static (refined)" in page and "numpy p50" in page and "NDCG@10 kept %" in page
    assert not any(marker in page for marker in ('src="http', 'href="http', "<script"))  # opens offline
    missing = CliRunner().invoke(cli, ["report", str(finished_run.root), "--html", "--load-test", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "no load test" in missing.output


def test_router_export_is_one_model_student_for_queries_teacher_for_documents(finished_run: RunDir) -> None:
    from typer.testing import CliRunner

    from harnesslm.cli.app import app as cli
    from harnesslm.encoding.cache import encode

    result = CliRunner().invoke(cli, ["export", str(finished_run.root), "--router", "--student", "static"])
    assert result.exit_code == 0, result.output
    folder = finished_run.root / "export" / "static-router"
    model = SentenceTransformer(str(folder))
    queries = list(dict.fromkeys(finished_run.split("test")["query"]))[:8]
    items = finished_run.catalog["text"].tolist()[:8]
    student = load_student(finished_run, "static", "refined")
    np.testing.assert_allclose(
        model.encode_query(queries, normalize_embeddings=True), encode(student, queries), atol=1e-5
    )
    np.testing.assert_allclose(
        model.encode_document(items, normalize_embeddings=True),
        encode(finished_run.teacher, items, role="document"),
        atol=1e-5,
    )
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers")
    assert finished_run.teacher_space in card and "static (refined)" in card and "Licence:" in card
    assert "| teacher (fine-tuned) |" in card and "p50 ms" in card
    pool = finished_run.read_json("pool.json")
    assert f"alignment pool of {pool['size']:,} texts" in card  # what alignment read, not only the prepared queries


def test_the_model_card_names_the_alignment_pool_by_source() -> None:
    from harnesslm.report.model_card import training_data

    data = {"items": 1200, "judgments": 50, "queries": {"train": 30, "validation": 10}, "query_pool": 30}
    pool = {
        "size": 75,
        "sources": {"train_queries": {"kept": 30}, "extra_queries": {"kept": 0}, "pseudo_queries": {"kept": 45}},
    }
    assert training_data(data, pool) == (
        "Catalog of 1,200 items; 50 judged query-item pairs; queries 30 train, 10 validation; "
        "alignment pool of 75 texts (train queries 30, pseudo queries 45)."
    )
    assert training_data(data, {}).endswith("alignment pool of 30 queries.")  # a run not aligned yet
    assert training_data({}, pool) == "(the run records no data summary)"


def test_shop_token_distillation_reads_the_pool_and_catalog_only(finished_run: RunDir, tmp_path: Path) -> None:
    run = RunDir(Path(shutil.copytree(finished_run.root, tmp_path / "run")))  # the baseline is rewritten
    static_cfg = run.config.students[0].model_copy(update={"distill_tokens": "shop"})
    table = steps.distill_static_baseline(run, static_cfg)
    texts = steps.shop_texts(run)
    assert set(run.query_pool()) <= set(texts)
    assert not set(run.split("test")["query"]) & set(texts) - set(run.catalog["text"])
    weights = table.embedding.weight.detach().numpy()
    used = used_token_ids(table.tokenizer, texts)
    assert np.abs(weights[used]).sum(axis=1).min() > 0 and np.isfinite(weights).all()
    cached = sorted(p.name for p in (run.cache_dir.parent / "static").iterdir())
    assert any("-shop" in name for name in cached) and any("-shop" not in name for name in cached)


def test_a_run_keeps_what_it_loaded_until_a_step_rewrites_it(finished_run: RunDir) -> None:
    run = RunDir(finished_run.root)
    teacher, catalog, index = run.teacher, run.catalog, run.index
    assert run.teacher is teacher and run.index is index, "loaded once, shared by the steps of one process"
    run.loaded.index_rewritten()
    assert run.index is not index and run.teacher is teacher
    run.loaded.teacher_rewritten()
    assert run.teacher is not teacher, "a fine-tuned teacher is read again"
    assert run.catalog is catalog, "the catalog did not change"


def test_prepare_writes_the_ood_splits_and_trains_on_no_held_out_item(tmp_path, demo_files, tiny_teacher) -> None:
    config = updated(small_config(demo_files, tiny_teacher, tmp_path / "cache"), {"data": {"ood_holdout": 0.3}})
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    groups = set(pd.read_json(run.data_dir / "ood_groups.json", typ="series"))
    held_items = set(run.catalog.loc[run.catalog["text"].map(product_group).isin(groups), "item_id"])
    assert groups and held_items
    assert not run.split("train")["item_id"].isin(held_items).any()
    for name in ("ood_validation", "ood_test"):
        frame = run.split(name)
        assert not frame.empty and frame["query"].isin(run.split("train")["query"]).sum() == 0
    assert run.read_json("data.json")["ood_groups_held_out"] == len(groups)
    steps.teacher(run, progress=False)
    steps.build_index(run, progress=False)
    ood = evaluate(RunDir(run.root), progress=False)["ood_test"]
    assert ood["queries"] == run.split("ood_test")["query"].nunique()
    assert "ndcg_recovery_%" in ood["systems"][TEACHER] and 0 <= ood["systems"][TEACHER]["ndcg@10"] <= 1


def _catalog_change(run: RunDir, folder: Path) -> tuple[Path, Path, str, str]:
    """A delta file (one item's title changed, one new item) and a deletions file (one id)."""
    cfg = run.config.data.catalog
    changed, deleted = run.catalog["item_id"].iloc[0], run.catalog["item_id"].iloc[1]
    delta = pd.DataFrame({cfg.id_column: [changed, "new-1"], cfg.text_column: ["zebra hammer deluxe", "drill 99v"]})
    delta.to_csv(folder / "delta.csv", index=False)
    (folder / "gone.txt").write_text(f"{deleted}\n", encoding="utf-8")
    return folder / "delta.csv", folder / "gone.txt", changed, deleted


def test_a_catalog_change_encodes_only_its_new_texts(
    finished_run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harnesslm.encoding.cache import encode
    from harnesslm.pipeline import index as index_step
    from harnesslm.run.catalog_embeddings import item_cache_path

    shutil.copytree(finished_run.root, tmp_path / "copy")
    run = RunDir(tmp_path / "copy")
    before = run.catalog
    kept = before["item_id"].iloc[2]
    kept_vector = run.index.vectors()[list(run.index.item_ids).index(kept)]
    delta, gone, changed, deleted = _catalog_change(run, tmp_path)
    encoded: list[list[str]] = []
    real = index_step.encoded_texts
    monkeypatch.setattr(
        index_step, "encoded_texts", lambda r, m, texts, *a: encoded.append(texts) or real(r, m, texts, *a)
    )
    counts = index_step.update_index(run, delta, gone, progress=False)
    assert counts == {"added": 1, "changed": 1, "removed": 1, "encoded": 2, "in_place": True}
    assert encoded == [["zebra hammer deluxe", "drill 99v"]], "only the new and changed texts are encoded"
    after = RunDir(run.root)
    ids = after.catalog["item_id"].tolist()
    assert len(ids) == len(before) and deleted not in ids and ids[-1] == "new-1" and ids[0] == changed
    assert after.index.meta.size == len(ids) and set(after.index.item_ids) == set(ids)
    found, _ = after.index.search(encode(after.teacher, ["drill 99v"], role="document"), 1)
    assert found == [["new-1"]]
    np.testing.assert_allclose(after.index.vectors()[list(after.index.item_ids).index(kept)], kept_vector, atol=1e-6)
    assert after.lexical_index.search_ids(["zebra"], 1) == [[changed]], "BM25 follows the catalog"
    assert item_cache_path(after, after.teacher).exists(), "a later `harness index` encodes nothing"
    rebuilt = np.load(item_cache_path(after, after.teacher))  # what a full rebuild would index
    np.testing.assert_allclose(after.index.vectors(), rebuilt, atol=1e-6)
    assert provenance.read_record(after.index_dir)["updates"][0]["added"] == 1


def test_an_update_that_fails_leaves_the_index_and_the_catalog_whole(
    finished_run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harnesslm.pipeline import index as index_step

    shutil.copytree(finished_run.root, tmp_path / "copy")
    run = RunDir(tmp_path / "copy")
    catalog, meta = run.catalog, (run.index_dir / "meta.json").read_text(encoding="utf-8")
    delta, gone, _, _ = _catalog_change(run, tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(index_step, "build_item_index", broken)  # a rebuild fails
    monkeypatch.setattr(index_step.ItemIndex, "save", broken)  # an update in place fails as it writes
    with pytest.raises(RuntimeError, match="disk full"):
        index_step.update_index(run, delta, gone, progress=False)
    after = RunDir(run.root)
    assert after.catalog.equals(catalog) and (after.index_dir / "meta.json").read_text(encoding="utf-8") == meta
    with pytest.raises(DataError, match="not in the catalog"):
        (tmp_path / "unknown.txt").write_text("no-such-item\n", encoding="utf-8")
        index_step.update_index(after, deletions=tmp_path / "unknown.txt", progress=False)


def test_a_milvus_update_cut_off_halfway_is_refused_until_rerun(
    demo_files, tiny_teacher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pymilvus", reason="the Milvus backend needs pymilvus (pip install 'harness-lm[milvus]')")
    from harnesslm.encoding.cache import encode
    from harnesslm.index.milvus_index import MilvusItemIndex
    from harnesslm.pipeline import index as index_step

    config = updated(
        small_config(demo_files, tiny_teacher, tmp_path / "cache"),
        {"teacher": {"enabled": False}, "index": {"kind": "milvus", "milvus": {"index_type": "FLAT"}}},
    )
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    steps.teacher(run, progress=False)
    built = steps.build_index(run, progress=False)
    delta, gone, changed, deleted = _catalog_change(run, tmp_path)
    real_save = MilvusItemIndex.save

    def cut_off(self, directory):  # the process dies after Milvus took the change, before the run recorded it
        raise KeyboardInterrupt

    monkeypatch.setattr(MilvusItemIndex, "save", cut_off)
    with pytest.raises(KeyboardInterrupt):
        index_step.update_index(RunDir(run.root), delta, gone, progress=False)
    with pytest.raises(IndexMismatchError, match="same `harness index --update` again"):
        RunDir(run.root).index  # noqa: B018
    with pytest.raises(DataError, match="cut off"):
        index_step.update_index(RunDir(run.root), deletions=gone, progress=False)  # another change must wait
    monkeypatch.setattr(MilvusItemIndex, "save", real_save)
    counts = index_step.update_index(RunDir(run.root), delta, gone, progress=False)
    assert counts == {"added": 1, "changed": 1, "removed": 1, "encoded": 2, "in_place": True}
    after = RunDir(run.root)
    index = after.index
    assert isinstance(index, MilvusItemIndex) and index.meta.physical_collection == built.meta.physical_collection
    assert not (after.index_dir / "update.pending.json").exists()
    assert index.count() == len(after.catalog) and list(index.item_ids) == after.catalog["item_id"].tolist()
    assert deleted not in index.item_ids and changed in index.item_ids
    assert index.search(encode(after.teacher, ["drill 99v"], role="document"), 1)[0] == [["new-1"]]


def test_the_service_graph_follows_a_catalog_change_in_place_and_a_stale_one_is_built_again(
    finished_run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harnesslm.index import copied_from, index_version
    from harnesslm.pipeline import index as index_step
    from harnesslm.pipeline.serve import serving_index

    shutil.copytree(finished_run.root, tmp_path / "copy")
    run = RunDir(tmp_path / "copy")
    teacher = run.teacher
    served = serving_index(run, "hnsw", teacher, "teacher")
    folder = run.serving_dir / "hnsw"
    assert copied_from(folder) == index_version(run.index_dir)
    delta, gone, _, deleted = _catalog_change(run, tmp_path)
    counts = index_step.update_index(run, delta, gone, progress=False)
    assert counts["in_place"]
    after = RunDir(run.root)
    assert copied_from(folder) == index_version(after.index_dir), "the graph was updated with the index"
    graph = ItemIndex.load(folder)
    assert list(graph.item_ids) == after.catalog["item_id"].tolist() and graph.tombstones == 2  # changed + removed
    from harnesslm.encoding.cache import encode

    query = encode(after.teacher, ["drill 99v"], role="document")
    assert graph.search(query, 1)[0] == [["new-1"]] and deleted not in graph.search(query, 50)[0][0]

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the service rebuilt a current graph")

    with monkeypatch.context() as patched:
        patched.setattr(ItemIndex, "build", no_rebuild)
        again = serving_index(after, "hnsw", after.teacher, "teacher")
    assert list(again.item_ids) == list(graph.item_ids) and served is not again
    # a change the update step did not apply to the graph (its source is another version): built again
    (folder / "source.json").write_text(json.dumps({"index_version": "stale"}), encoding="utf-8")
    rebuilt = serving_index(RunDir(run.root), "hnsw", after.teacher, "teacher")
    assert rebuilt.ann.tombstones == 0 and copied_from(folder) == index_version(after.index_dir)


def test_an_hnsw_run_index_is_updated_in_place(demo_files, tiny_teacher, tmp_path: Path) -> None:
    from harnesslm.pipeline import index as index_step

    config = updated(
        small_config(demo_files, tiny_teacher, tmp_path / "cache"),
        {"teacher": {"enabled": False}, "index": {"kind": "hnsw"}},
    )
    run = steps.prepare(config.model_copy(update={"students": []}), tmp_path / "run")
    steps.teacher(run, progress=False)
    steps.build_index(run, progress=False)
    delta, gone, _, deleted = _catalog_change(run, tmp_path)
    assert index_step.update_index(RunDir(run.root), delta, gone, progress=False)["in_place"]
    index = RunDir(run.root).index
    assert index.meta.kind == "hnsw" and index.tombstones == 2 and deleted not in index.item_ids
    assert (RunDir(run.root).index_dir / "labels.npy").exists()

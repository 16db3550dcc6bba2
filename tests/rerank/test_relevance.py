"""The re-ranking stage on a small demo shop with tiny random models: teacher data, labelling, distillation,
re-ranking and its report rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harnesslm.config import RelevanceConfig, RunConfig, updated
from harnesslm.evaluation.metrics import RelevanceScale
from harnesslm.pipeline import relevance as stage
from harnesslm.pipeline.recipe import run_recipe
from harnesslm.rerank import datasets as rerank_data
from harnesslm.rerank import labelling
from harnesslm.rerank.reranker import Reranker
from harnesslm.run.run_dir import RunDir, StepMissingError


def _config(demo_files: dict[str, Path], teacher: Path, cache: Path) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {
                "catalog": {"path": demo_files["catalog"]},
                "judgments": {"path": demo_files["judgments"]},
                "extra_queries": [{"path": demo_files["unlabeled_queries"]}],
                "split": [0.6, 0.2, 0.2],
            },
            "teacher": {"model": str(teacher), "schedule": {"steps": 2, "batch_size": 8}},
            "students": [
                {"name": "static", "kind": "static", "pca_dims": 16, "align": {"steps": 5}, "refine": {"steps": 2}},
            ],
            "evaluation": {"baselines": []},
            "bench": {"latency_queries": 5, "warmup": 1, "throughput_batch_size": 8},
            "relevance": {
                "retriever": "static",
                "candidates_k": 10,
                "teacher": {"model": str(teacher), "schedule": {"steps": 4, "batch_size": 8}},
                "augment_k": 3,
                "augment_queries": 40,
                "reranker": {"model": "teacher", "layers": 1, "schedule": {"steps": 3, "batch_size": 2}},
                "bi_encoder": {"schedule": {"batch_size": 2}},
                "list_size": 4,
                "latency_queries": 3,
            },
            "cache_dir": str(cache),
        }
    )


@pytest.fixture(scope="module")
def recipe(demo_files, tiny_teacher, tmp_path_factory) -> Path:
    """A finished recipe (teacher, index, students), never changed: each test works on a copy of it."""
    root = tmp_path_factory.mktemp("rel")
    return run_recipe(_config(demo_files, tiny_teacher, root / "cache"), root / "run", progress=False).root


@pytest.fixture
def run(recipe: Path, tmp_path: Path) -> RunDir:
    """A fresh copy of the finished recipe, without a relevance stage, whatever ran before."""
    return RunDir(shutil.copytree(recipe, tmp_path / "run"))


@pytest.fixture(scope="module")
def taught(recipe: Path, tmp_path_factory) -> RunDir:
    """A copy of the recipe with the cross-encoder relevance teacher trained, for the tests of what uses it."""
    run = RunDir(shutil.copytree(recipe, tmp_path_factory.mktemp("taught") / "run"))
    stage.relevance_teacher(run, progress=False)
    return run


def test_soft_targets_scale_grades_to_probabilities() -> None:
    scale = RelevanceScale(label_offset=1.0)
    # gains 0, 1, 1.33, 2 over the largest gain 2
    assert np.allclose(rerank_data.soft_targets(np.array([1.0, 2.0, 2.33, 3.0]), scale, 2.0), [0, 0.5, 0.665, 1.0])
    with pytest.raises(ValueError, match="no positive gain"):
        rerank_data.soft_targets(np.array([1.0]), scale, 0.0)


def test_teacher_pairs_add_unjudged_retrieved_negatives() -> None:
    judgments = pd.DataFrame({"query": ["q", "q"], "item_id": ["a", "b"], "label": [3.0, 1.0]})
    texts = {i: f"text {i}" for i in "abcde"}
    data = rerank_data.teacher_training_pairs(
        judgments, {"q": ["a", "c", "d", "b"]}, texts, RelevanceScale(), negatives=1
    )
    rows = data.to_pandas()
    assert rows["label"].tolist()[:2] == [1.0, 0.0]
    extra = rows.iloc[2:]
    assert len(extra) == 1 and extra["text"].iloc[0] in {"text c", "text d"} and extra["label"].iloc[0] == 0.0


def test_augmentation_pairs_take_unjudged_candidates_in_rank_order() -> None:
    judgments = pd.DataFrame({"query": ["q"], "item_id": ["a"], "label": [3.0]})
    pairs = labelling.augmentation_pairs(judgments, {"q": ["a", "b", "c", "d"], "u": ["d", "e"]}, ["q", "u"], 2)
    assert list(zip(pairs["query"], pairs["item_id"], pairs["judged"], strict=True)) == [
        ("q", "a", True),
        ("q", "b", False),
        ("q", "c", False),
        ("u", "d", False),
        ("u", "e", False),
    ]


def test_augmentation_never_passes_off_withheld_judgments_as_unjudged() -> None:
    students = pd.DataFrame({"query": ["q"], "item_id": ["a"], "label": [3.0]})
    withheld = pd.DataFrame({"query": ["u"], "item_id": ["d"], "label": [1.0]})  # a human judged (u, d)
    candidates = {"q": ["a", "b"], "u": ["d", "e", "f"]}
    pairs = labelling.augmentation_pairs(students, candidates, ["q", "u"], 2, never=withheld)
    assert list(zip(pairs["query"], pairs["item_id"], pairs["judged"], strict=True)) == [
        ("q", "a", True),
        ("q", "b", False),
        ("u", "e", False),
        ("u", "f", False),
    ]


def test_label_pairs_scores_only_pairs_it_has_not_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def fake_scores(teacher, queries, texts, batch_size, progress):
        asked.extend(zip(queries, texts, strict=True))
        return torch.tensor([float(len(t)) for t in texts])

    monkeypatch.setattr(labelling, "score_pairs", fake_scores)
    pairs = pd.DataFrame({"query": ["q", "q", "u"], "item_id": ["a", "bb", "ccc"], "judged": [True, False, False]})
    known = pd.DataFrame({"query": ["q", "x"], "item_id": ["a", "a"], "teacher_score": [-5.0, 9.0]})
    texts = {"a": "A", "bb": "BB", "ccc": "CCC"}
    labelled = labelling.label_pairs(None, pairs, texts, progress=False, known=known)
    assert asked == [("q", "BB"), ("u", "CCC")]
    assert labelled["teacher_score"].tolist() == [-5.0, 2.0, 3.0]
    assert labelled[["query", "item_id", "judged"]].equals(pairs)


def test_reranker_dataset_margins_and_lists() -> None:
    labelled = pd.DataFrame(
        {"query": ["q"] * 4, "item_id": list("abcd"), "teacher_score": [2.0, -1.0, 0.5, 0.0], "judged": True}
    )
    texts = {i: i.upper() for i in "abcd"}
    triples = rerank_data.reranker_dataset(
        labelled, texts, "margin_mse", list_size=4, n_lists=1, max_gain=2.0
    ).to_pandas()
    assert len(triples) == 2  # a list of 4 gives 2 disjoint pairs: same forward passes as one list of 4
    raw = np.array([2.0, -1.0, 0.5, 0.0])
    z = (raw - raw.mean()) / raw.std()  # margins are in units of the teacher's score spread
    score = dict(zip("ABCD", z, strict=True))
    for _, row in triples.iterrows():
        assert row["label"] == pytest.approx(score[row["positive"]] - score[row["negative"]])
    lists = rerank_data.reranker_dataset(labelled, texts, "listnet", list_size=3, n_lists=5, max_gain=2.0).to_pandas()
    assert len(lists) == 5 and all(len(d) == 3 for d in lists["docs"])
    grade = {t: 2.0 / (1 + np.exp(-s)) for t, s in score.items()}
    for docs, labels in zip(lists["docs"], lists["labels"], strict=True):
        assert np.allclose(labels, [grade[d] for d in docs])


def test_stage_trains_labels_distils_and_evaluates(run: RunDir) -> None:
    with pytest.raises(StepMissingError, match="harness relevance"):
        stage.load_relevance_teacher(run)
    stage.relevance_teacher(run, progress=False)
    labelled = stage.label(run, progress=False)
    assert labelled["judged"].any() and (~labelled["judged"]).any()
    assert np.isfinite(labelled["teacher_score"]).all()
    assert set(labelled["query"]) >= set(run.split("train")["query"])
    # growing the amount keeps every judged pair and adds augmented ones
    none, some = stage.with_augmentation(labelled, 0), stage.with_augmentation(labelled, 10)
    assert none["judged"].all() and len(none) < len(some) <= len(labelled)

    for loss in ("margin_mse", "listnet"):
        stage.distill_reranker(run, loss, labelled, progress=False)
    assert stage.available_rerankers(run) == ["listnet", "margin_mse"]

    result = stage.rerank_evaluation(run, progress=False)
    systems = result["systems"]
    assert set(systems) == {stage.RETRIEVER_ONLY, stage.TEACHER_RERANKER, "student (listnet)", "student (margin_mse)"}
    assert result["queries"] == run.split("test")["query"].nunique()
    # re-ranking permutes the same top-K: recall@K cannot change
    for values in systems.values():
        assert values["recall@10"] == pytest.approx(systems[stage.RETRIEVER_ONLY]["recall@10"])
    assert systems[stage.TEACHER_RERANKER]["latency_p50_ms"] > 0
    from harnesslm.report.markdown import write_report

    report = write_report(run)
    assert "## Re-ranking the static (refined) top-10" in report and "student (margin_mse)" in report


def test_stage_redoes_only_what_changed_settings_touch(taught: RunDir, capsys) -> None:
    stage.relevance(taught, losses=["margin_mse"], progress=False)  # brings every part up to date
    teacher_file = next(p for p in taught.relevance_teacher_dir.iterdir() if p.suffix == ".safetensors")
    reranker_file = next(p for p in taught.reranker_dir("margin_mse").iterdir() if p.suffix == ".safetensors")
    teacher_mtime, reranker_mtime = teacher_file.stat().st_mtime_ns, reranker_file.stat().st_mtime_ns
    capsys.readouterr()
    stage.relevance(taught, losses=["margin_mse"], progress=False)
    assert (teacher_file.stat().st_mtime_ns, reranker_file.stat().st_mtime_ns) == (teacher_mtime, reranker_mtime)

    steps = taught.config.relevance.reranker.schedule.steps + 1  # only the re-ranker depends on it
    patch = {"relevance": {"reranker": {"schedule": {"steps": steps}}}}
    changed = RunDir(taught.root, updated(taught.config, patch))
    stage.relevance(changed, losses=["margin_mse"], progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert teacher_file.stat().st_mtime_ns == teacher_mtime
    assert reranker_file.stat().st_mtime_ns != reranker_mtime
    assert "re-ranker margin_mse: redone, because relevance.reranker.schedule.steps" in said


def test_distill_reranker_steps_override_the_config_for_that_run_only(
    taught: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []

    def record(student, labelled, texts, loss, cfg, max_gain, progress):
        seen.append(cfg.reranker.schedule.steps)
        return {}

    monkeypatch.setattr(stage.distill, "distill_reranker", record)
    labelled = stage.label(taught, progress=False)
    stage.distill_reranker(taught, "margin_mse", labelled, tmp_path / "a", progress=False, steps=7)
    stage.distill_reranker(taught, "margin_mse", labelled, tmp_path / "b", progress=False)
    assert seen == [7, taught.config.relevance.reranker.schedule.steps] and seen[1] != 7
    assert "distillation/a" in taught.read_json("relevance.json")


@pytest.mark.parametrize("loss", ["margin_mse", "approx_ndcg"])
def test_bi_encoder_distillation_trains_the_student_and_keeps_the_index(taught: RunDir, loss: str) -> None:
    labelled = stage.label(taught, progress=False)
    before = stage.load_student(taught, "static", "refined").encode(["power drill"])
    result = stage.distill_bi_encoder(taught, loss, labelled=labelled, progress=False)
    assert result["student"] == "static" and result["from_phase"] == "refined"
    assert set(result["before"]) == set(result["after"]) >= {"ndcg@10", "recall@100"}
    folder = taught.bi_encoder_dir("static", loss)
    from harnesslm.models.model_loading import load_model
    from harnesslm.students.meta import read_student_meta

    assert read_student_meta(folder).teacher_space == taught.index.meta.space
    after = load_model(str(folder)).encode(["power drill"])
    assert after.shape == before.shape and not np.allclose(after, before)  # it trained
    # the saved refined student itself is untouched
    assert np.allclose(stage.load_student(taught, "static", "refined").encode(["power drill"]), before)


def test_rerank_one_query_sorts_candidates_by_cross_encoder_score(taught: RunDir) -> None:
    query = taught.split("test")["query"].iloc[0]
    ranked = stage.rerank(taught, query, "teacher", k=8)
    assert len(ranked) == 8
    scores = [s for _, s, _ in ranked]
    assert scores == sorted(scores, reverse=True)
    model = stage.load_reranker(taught, "teacher")
    ids = [i for i, _, _ in ranked]
    direct = Reranker(model, taught.item_texts).scores(query, ids)
    assert np.allclose(direct, scores, atol=1e-5)


def test_the_default_teacher_reads_pairs_marked_with_the_catalogs_terms(taught: RunDir) -> None:
    from harnesslm.rerank.models import score_pairs
    from harnesslm.rerank.professional_terms import FILE

    assert taught.config.relevance.teacher.professional_terms, "on by default"
    assert (taught.relevance_teacher_dir / FILE).exists()
    teacher = stage.load_relevance_teacher(taught)
    terms = teacher.professional_terms
    assert terms is not None and terms.brands, "the demo shop's titles open with its brands"
    query = next(q for q in taught.split("test")["query"] if terms.found(q))
    text = next(iter(taught.item_texts.values()))
    marked = teacher.predict([(terms.mark(query, text), text)], activation_fn=torch.nn.Identity())
    assert np.allclose(score_pairs(teacher, [query], [text]).numpy(), marked, atol=1e-5)
    assert stage.small_reranker(taught).professional_terms is None, "the truncated student reads unmarked pairs"


def test_teacher_without_terms_and_with_fgm_trains_on_plain_pairs(run: RunDir, monkeypatch: pytest.MonkeyPatch) -> None:
    from harnesslm.losses.adversarial_contrastive import AdversarialContrastiveLoss
    from harnesslm.rerank import relevance_teacher as trainer
    from harnesslm.rerank.professional_terms import FILE

    patch = {"teacher": {"professional_terms": False, "adversarial": {"method": "fgm", "epsilon": 0.1}}}
    changed = RunDir(run.root, updated(run.config, {"relevance": patch}))
    seen = {}
    train = trainer.train_cross_encoder

    def record(model, dataset, loss, **kwargs):
        seen["loss"], seen["queries"] = loss, list(dataset["query"])
        return train(model, dataset, loss, **kwargs)

    monkeypatch.setattr(trainer, "train_cross_encoder", record)
    stage.relevance_teacher(changed, progress=False)
    assert isinstance(seen["loss"], AdversarialContrastiveLoss)
    assert not any(" | brand " in q for q in seen["queries"])
    assert not (changed.relevance_teacher_dir / FILE).exists()
    assert stage.load_relevance_teacher(changed).professional_terms is None


def test_truncation_keeps_the_first_layers_and_the_head(tiny_teacher: Path, tmp_path: Path) -> None:
    from harnesslm.rerank.models import load_cross_encoder, truncate_cross_encoder

    # a saved cross-encoder, so both loads share one head (a bi-encoder folder gets a fresh random head each time)
    load_cross_encoder(str(tiny_teacher)).save_pretrained(str(tmp_path / "full"))
    full = load_cross_encoder(str(tmp_path / "full"))
    assert len(full.model.bert.encoder.layer) > 2
    second = full.model.bert.encoder.layer[1].attention.self.query.weight.detach().clone()
    head = full.model.classifier.weight.detach().clone()
    small = truncate_cross_encoder(load_cross_encoder(str(tmp_path / "full")), 2)
    assert len(small.model.bert.encoder.layer) == 2 == small.model.config.num_hidden_layers
    assert torch.equal(small.model.bert.encoder.layer[1].attention.self.query.weight, second)
    assert torch.equal(small.model.classifier.weight, head)
    # saved and loaded again it is the same 2-layer model (no layer silently re-initialised)
    small.save_pretrained(str(tmp_path / "small"))
    again = load_cross_encoder(str(tmp_path / "small"))
    pairs = [("drill", "cordless drill 18v"), ("paint", "white wall paint")]
    assert len(again.model.bert.encoder.layer) == 2
    assert np.allclose(small.predict(pairs), again.predict(pairs), atol=1e-5)
    with pytest.raises(ValueError, match="cannot keep 9 layers"):
        truncate_cross_encoder(full, 9)


def test_relevance_config_rejects_unknown_loss() -> None:
    with pytest.raises(ValueError):
        RelevanceConfig(student_losses=["hinge"])

"""The config's shape: one Schedule per training step, students by kind, and the keys of earlier versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harnesslm.config import (
    RelevanceConfig,
    RunConfig,
    StaticStudentConfig,
    TeacherConfig,
    TruncatedStudentConfig,
    student_config,
    updated,
)

DATA = {"catalog": {"path": "c.csv"}, "judgments": {"path": "j.csv"}}


def test_a_partial_schedule_keeps_its_owners_defaults() -> None:
    static = student_config({"name": "s", "kind": "static", "align": {"steps": 500}})
    truncated = student_config({"name": "t", "kind": "truncated", "refine": {"learning_rate": 1e-5}})
    assert isinstance(static, StaticStudentConfig) and isinstance(truncated, TruncatedStudentConfig)
    assert (static.align.steps, static.align.batch_size, static.align.learning_rate) == (500, 128, 2e-3)
    assert (static.refine.steps, static.refine.learning_rate) == (300, 1e-4)  # the static student's tuned values
    assert (truncated.align.steps, truncated.refine.steps, truncated.refine.learning_rate) == (1000, 100, 1e-5)
    assert TeacherConfig(schedule={"steps": 5}).schedule.learning_rate == 3e-5


def test_flat_keys_of_earlier_versions_still_load() -> None:
    teacher = TeacherConfig.model_validate({"max_steps": 7, "learning_rate": 1e-4, "seed": 3})
    assert (teacher.schedule.steps, teacher.schedule.learning_rate, teacher.schedule.seed) == (7, 1e-4, 3)
    student = student_config({"name": "s", "kind": "static", "align_steps": 9, "refine_align_weight": 0.5, "seed": 2})
    assert (student.align.steps, student.refine.align_weight, student.align.seed, student.refine.seed) == (9, 0.5, 2, 2)
    relevance = RelevanceConfig.model_validate({"student_steps": 5, "student_batch_size": 4, "seed": 1})
    reranker, bi_encoder = relevance.reranker.schedule, relevance.bi_encoder.schedule
    assert (reranker.steps, reranker.batch_size, bi_encoder.batch_size) == (5, 4, 4)
    assert relevance.seed == relevance.teacher.schedule.seed == reranker.seed == 1
    # the shape before the sections: each schedule was the section itself, its settings flat beside it
    earlier = {"teacher": {"steps": 7}, "student": {"steps": 9}, "student_layers": 2, "bi_encoder_losses": ["listnet"]}
    relevance = RelevanceConfig.model_validate(earlier)
    assert (relevance.teacher.schedule.steps, relevance.reranker.schedule.steps, relevance.reranker.layers) == (7, 9, 2)
    assert relevance.bi_encoder.losses == ["listnet"] and relevance.teacher.schedule.batch_size == 32


def test_encoding_and_milvus_keys_of_earlier_versions_move_to_their_sections(tmp_path: Path) -> None:
    """``index.encode_workers`` is ``encoding.workers`` now, ``index.milvus_uri`` is ``index.milvus.uri``; a run
    whose index was recorded in the old shape is still current."""
    from harnesslm.run import provenance

    old = {"kind": "milvus", "milvus_uri": "a.db", "milvus_index_type": "FLAT", "encode_workers": 2, "shard_size": 5}
    config = RunConfig.model_validate({"data": DATA, "index": old, "students": []})
    assert (config.index.milvus.uri, config.index.milvus.index_type) == ("a.db", "FLAT")
    assert (config.encoding.workers, config.encoding.shard_size, config.encoding.backend) == (2, 5, "auto")
    assert "milvus_uri" not in config.index.model_dump() and "encode_workers" not in config.index.model_dump()
    assert updated(config, {"index": {"milvus_index_type": "HNSW"}}).index.milvus.index_type == "HNSW"
    recorded = {"index": {**{k: v for k, v in old.items() if k.startswith(("kind", "milvus"))}, "dim": None}}
    recorded["index"] |= {"hnsw_m": 32, "hnsw_ef_search": 128, "hnsw_ef_construction": 200, "ivf_nlist": None}
    recorded["index"] |= {"ivf_nprobe": 32, "pq_m": None, "milvus_collection": "harness_items"}
    recorded["index"] |= {"milvus_full_text": True, "encode_batch_size": 64, "encode_workers": 2, "shard_size": 5}
    provenance.write_record(tmp_path, recorded, {})
    assert provenance.stale_reason(tmp_path, provenance.index_settings(config), {}) is None
    moved = updated(config, {"index": {"milvus": {"collection": "other"}}})
    assert "milvus.collection" in provenance.stale_reason(tmp_path, provenance.index_settings(moved), {})


def test_a_re_ranker_recorded_in_the_flat_relevance_shape_is_still_current(tmp_path: Path) -> None:
    from harnesslm.run import provenance

    config = RunConfig.model_validate({"data": DATA, "students": [], "relevance": {"student_layers": 2}})
    schedule = config.relevance.reranker.schedule.model_dump(mode="json")
    dumped = config.relevance.model_dump(mode="json")
    earlier = {k: v for k, v in dumped.items() if k in (*provenance.RERANKER_KEYS[1:], "max_length", "seed")}
    earlier |= {"student": schedule, "student_model": "teacher", "student_layers": 2, "student_losses": ["margin_mse"]}
    provenance.write_record(tmp_path, {"relevance": earlier}, {})
    assert provenance.stale_reason(tmp_path, provenance.reranker_settings(config), {}) is None
    deeper = updated(config, {"relevance": {"reranker": {"layers": 3}}})
    reason = provenance.stale_reason(tmp_path, provenance.reranker_settings(deeper), {})
    assert "relevance.reranker.layers 2 -> 3" in reason


def test_a_saved_config_of_an_earlier_version_loads_with_both_kinds_keys() -> None:
    """Earlier versions saved every student key (the other kind's too) in config.yaml."""
    saved = {"name": "s", "kind": "static", "layers": 2, "linear_head": True, "align_steps": 300, "pca_dims": 256}
    student = student_config(saved)
    assert isinstance(student, StaticStudentConfig) and student.pca_dims == 256 and student.align.steps == 300
    with pytest.raises(ValidationError, match="Extra inputs"):  # in the new shape, a wrong-kind key is a mistake
        student_config({"name": "s", "kind": "static", "layers": 2})


def test_sections_are_frozen_and_updated_makes_a_new_config() -> None:
    config = RunConfig.model_validate({"data": DATA})
    with pytest.raises(ValidationError):
        config.teacher.model = "other"  # type: ignore[misc]
    patch = {"teacher": {"schedule": {"steps": 3}}, "relevance": {"reranker": {"schedule": {"steps": 9}}}}
    changed = updated(config, patch)
    assert changed.teacher.schedule.steps == 3 and changed.relevance.reranker.schedule.steps == 9
    assert config.teacher.schedule.steps == 60 and config.relevance.reranker.schedule.steps == 400
    assert changed.teacher.schedule.learning_rate == config.teacher.schedule.learning_rate


@pytest.mark.parametrize("name", ["homedepot", "homedepot-minilm", "homedepot-serve", "homedepot-gemma"])
def test_the_shipped_configs_load(name: str) -> None:
    """Every config under configs/ parses, with unique student names (a typo in a key fails here, not an hour
    into a run)."""
    from pathlib import Path

    from harnesslm.config import load_config

    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    config = load_config(path)
    names = [s.name for s in config.students]
    assert names and len(set(names)) == len(names)


def _fake_model(folder: Path, parameters: int, tokenizer_type: str) -> Path:
    """A model folder whose weight file's header declares ``parameters`` weights (no data: only headers are read)."""
    import json
    import struct

    folder.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [parameters], "data_offsets": [0, 0]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": tokenizer_type}}))
    return folder


def test_default_students_follow_the_teachers_size(tmp_path: Path) -> None:
    from harnesslm.config import RunConfig

    data = {"catalog": {"path": "c.csv"}, "judgments": {"path": "j.csv"}}
    small = _fake_model(tmp_path / "small", 22_000_000, "WordPiece")
    config = RunConfig.model_validate({"data": data, "teacher": {"model": str(small)}})
    assert [(s.name, s.kind) for s in config.students] == [("static", "static")]
    large = _fake_model(tmp_path / "large", 600_000_000, "BPE")
    students = RunConfig.model_validate({"data": data, "teacher": {"model": str(large)}}).students
    assert [(s.kind, s.base) for s in students] == [
        ("static", "bundled:all-mpnet-base-v2"),  # a BPE tokenizer takes no whole words: mpnet's table
        ("truncated", "bundled:all-MiniLM-L6-v2"),
    ]
    wordpiece = _fake_model(tmp_path / "large-wordpiece", 600_000_000, "WordPiece")
    assert RunConfig.model_validate({"data": data, "teacher": {"model": str(wordpiece)}}).students[0].base is None
    given = RunConfig.model_validate({"data": data, "teacher": {"model": str(large)}, "students": []})
    assert given.students == []  # students a config names are never replaced

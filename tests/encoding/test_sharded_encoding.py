"""Sharded, resumable, multi-process catalog encoding with the tiny teacher."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from harnesslm.encoding import sharded as sharded_encoding
from harnesslm.encoding.cache import cache_path, cached_encode, encode
from harnesslm.encoding.sharded import ShardManifestError, encode_sharded, sharded_cached_encode
from harnesslm.models.fingerprint import model_fingerprint
from harnesslm.models.model_loading import load_model

SHARD = 64


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from harnesslm.demo.shop import make_demo_shop

    return make_demo_shop(n_products=300, n_queries=150, n_unlabeled=100).catalog["product_title"].tolist()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the shards encoded in this process (workers=1 encodes here)."""
    calls: list[int] = []
    real = sharded_encoding.encode

    def wrapped(model, shard_texts, *args, **kwargs):
        calls.append(len(shard_texts))
        return real(model, shard_texts, *args, **kwargs)

    monkeypatch.setattr(sharded_encoding, "encode", wrapped)
    return calls


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_two_worker_processes_fill_the_same_cache_as_one(
    tiny_teacher: Path, texts: list[str], cache_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model(str(tiny_teacher))
    single = encode(model, texts)
    cache = cache_env / "embeddings"

    two = sharded_cached_encode(model, texts, cache, workers=2, shard_size=SHARD, progress=False)
    assert two.shape == single.shape and two.dtype == np.float32
    np.testing.assert_allclose(two, single, atol=1e-5)
    # exactly the file the single-process path reads, and nothing else left behind (shards, model copy, temp)
    assert _names(cache) == [cache_path(model, texts, cache).name]

    def must_not_encode(*args, **kwargs):
        raise AssertionError("the cache written by the sharded encoder was not reused")

    monkeypatch.setattr("harnesslm.encoding.cache.encode", must_not_encode)
    np.testing.assert_array_equal(cached_encode(model, texts, cache, progress=False), two)
    np.testing.assert_array_equal(sharded_cached_encode(model, texts, cache, workers=2, progress=False), two)


def test_shards_and_manifest(tiny_teacher: Path, texts: list[str], tmp_path: Path, counted: list[int]) -> None:
    out = tmp_path / "shards"
    embeddings = encode_sharded(str(tiny_teacher), texts, out, shard_size=SHARD, workers=1, progress=False)
    np.testing.assert_allclose(embeddings, encode(load_model(str(tiny_teacher)), texts), atol=1e-5)
    assert counted == [64, 64, 64, 64, 44]
    assert _names(out) == ["manifest.json"] + [f"shard-{i:05d}.npy" for i in range(5)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == model_fingerprint(load_model(str(tiny_teacher)))
    assert manifest["count"] == 300 and manifest["shard_size"] == SHARD and manifest["max_seq_length"] == 48

    # everything present and valid: nothing is encoded again
    again = encode_sharded(str(tiny_teacher), texts, out, shard_size=SHARD, workers=1, progress=False)
    assert counted == [64, 64, 64, 64, 44]
    np.testing.assert_array_equal(again, embeddings)


def test_resume_after_a_crash_recomputes_only_missing_shards(
    tiny_teacher: Path, texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model(str(tiny_teacher))
    out = tmp_path / "shards"
    calls: list[int] = []
    real = sharded_encoding.encode

    def crash_on_third(m, shard_texts, *args, **kwargs):
        calls.append(len(shard_texts))
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(m, shard_texts, *args, **kwargs)

    monkeypatch.setattr(sharded_encoding, "encode", crash_on_third)
    with pytest.raises(RuntimeError, match="killed"):
        encode_sharded(model, texts, out, shard_size=SHARD, workers=1, progress=False)
    assert _names(out) == ["manifest.json", "shard-00000.npy", "shard-00001.npy"]  # no temporary files
    finished = {name: (out / name).stat().st_mtime_ns for name in ("shard-00000.npy", "shard-00001.npy")}
    # a damaged shard (wrong row count) is not trusted
    np.save(out / "shard-00003.npy", np.zeros((5, 32), dtype=np.float32))

    def counting(m, shard_texts, *args, **kwargs):
        calls.append(len(shard_texts))
        return real(m, shard_texts, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(sharded_encoding, "encode", counting)
    resumed = encode_sharded(model, texts, out, shard_size=SHARD, workers=1, progress=False)
    assert calls == [64, 64, 44]  # shards 2, 3 (damaged) and 4 only
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished
    np.testing.assert_allclose(resumed, encode(model, texts), atol=1e-5)


def test_a_manifest_of_another_model_refuses_or_recomputes(
    tiny_teacher: Path, texts: list[str], tmp_path: Path, counted: list[int]
) -> None:
    model = load_model(str(tiny_teacher))
    out = tmp_path / "shards"
    first = encode_sharded(model, texts, out, shard_size=100, workers=1, progress=False)
    assert len(counted) == 3

    other = load_model(str(tiny_teacher))
    with torch.no_grad():
        weight = other[0].auto_model.embeddings.word_embeddings.weight
        weight.add_(0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ShardManifestError, match="model"):
        encode_sharded(other, texts, out, shard_size=100, workers=1, progress=False)
    with pytest.raises(ShardManifestError, match="texts"):
        encode_sharded(model, texts[::-1], out, shard_size=100, workers=1, progress=False)
    assert len(counted) == 3  # refused before encoding anything

    recomputed = encode_sharded(other, texts, out, shard_size=100, workers=1, overwrite=True, progress=False)
    assert len(counted) == 6
    assert not np.allclose(recomputed, first, atol=1e-4)
    assert json.loads((out / "manifest.json").read_text())["model"] == model_fingerprint(other)
    # shards of unknown origin (no manifest) are not trusted either
    (out / "manifest.json").unlink()
    with pytest.raises(ShardManifestError):
        encode_sharded(model, texts, out, shard_size=100, workers=1, progress=False)


def test_query_role_shards_use_the_query_prompt_and_old_manifests_stay_valid(
    tiny_teacher: Path, texts: list[str], cache_env: Path, counted: list[int]
) -> None:
    from harnesslm.models.prompts import set_prompts

    model = load_model(str(tiny_teacher))
    set_prompts(model, query="Q: ", document="D: ")
    cache = cache_env / "embeddings"
    queries = sharded_cached_encode(model, texts[:100], cache, workers=1, shard_size=40, role="query", progress=False)
    np.testing.assert_allclose(queries, encode(model, texts[:100], role="query"), atol=1e-5)
    assert not np.allclose(queries, encode(model, texts[:100], role="document"), atol=1e-3)
    assert cache_path(model, texts[:100], cache, role="query").exists()
    assert not cache_path(model, texts[:100], cache, role="document").exists()

    # a shard folder written before roles existed (no "role" in its manifest) holds documents: it is resumed
    out = cache_env / "old"
    encode_sharded(model, texts[:100], out, shard_size=40, workers=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest.pop("role") == "document"
    (out / "manifest.json").write_text(json.dumps(manifest))
    encoded = len(counted)
    encode_sharded(model, texts[:100], out, shard_size=40, workers=1, progress=False)
    assert len(counted) == encoded  # nothing encoded again
    with pytest.raises(ShardManifestError, match="role"):  # but its document shards never pass for queries
        encode_sharded(model, texts[:100], out, shard_size=40, workers=1, role="query", progress=False)


def test_bad_arguments_and_missing_ray(tiny_teacher: Path, texts: list[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor"):
        encode_sharded(str(tiny_teacher), texts, tmp_path, executor="dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        encode_sharded(str(tiny_teacher), texts, tmp_path, workers=0)
    with pytest.raises(ValueError, match="max_seq_length"):
        encode_sharded(load_model(str(tiny_teacher)), texts, tmp_path, max_seq_length=7)
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"harness-lm\[ray\]"):
            encode_sharded(str(tiny_teacher), texts, tmp_path / "ray", executor="ray")
        assert not (tmp_path / "ray").exists()  # refused before doing anything


def test_item_embeddings_uses_the_sharded_encoder_with_several_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harnesslm.config import EncodingConfig
    from harnesslm.run.catalog_embeddings import item_embeddings

    seen: dict = {}

    def fake(model, texts, cache_dir, **kwargs):
        seen.update(kwargs, texts=texts, cache_dir=cache_dir)
        return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(sharded_encoding, "sharded_cached_encode", fake)
    run = SimpleNamespace(
        config=SimpleNamespace(encoding=EncodingConfig(workers=3, shard_size=500, batch_size=16)),
        catalog=pd.DataFrame({"text": ["a", "b"]}),
        cache_dir=tmp_path,
    )
    assert item_embeddings(run, model=object(), progress=False).shape == (2, 4)  # type: ignore[arg-type]
    assert seen["workers"] == 3 and seen["shard_size"] == 500 and seen["batch_size"] == 16
    assert seen["executor"] == "process" and seen["texts"] == ["a", "b"] and seen["cache_dir"] == tmp_path
    assert EncodingConfig().workers == 1 and EncodingConfig().shard_size == 10_000


def test_a_gpu_encodes_in_one_process_whatever_the_workers(
    tiny_teacher: Path, cache_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers share out CPU cores; on a GPU a config written for a CPU (encode_workers: 2) encodes in one
    process, in the GPU's large batches, into the same cache file."""
    from harnesslm.config import EncodingConfig
    from harnesslm.run import catalog_embeddings
    from harnesslm.run.catalog_embeddings import item_cache_path, item_embeddings

    def refuse(*args, **kwargs):
        raise AssertionError("sharded across processes on a GPU")

    monkeypatch.setattr(sharded_encoding, "sharded_cached_encode", refuse)
    monkeypatch.setattr(catalog_embeddings, "accelerator", lambda: "cuda")
    model = load_model(str(tiny_teacher))
    run = SimpleNamespace(
        config=SimpleNamespace(encoding=EncodingConfig(workers=2, backend="torch")),
        catalog=pd.DataFrame({"text": ["cordless drill", "paint roller", "copper pipe"]}),
        cache_dir=cache_env / "embeddings",
    )
    embeddings = item_embeddings(run, model, progress=False)  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.load(item_cache_path(run, model)), embeddings)  # type: ignore[arg-type]


def test_item_cache_path_names_the_file_the_catalog_pass_writes(tiny_teacher: Path, cache_env: Path) -> None:
    """A prompted teacher has a query-role and a document-role file for the same texts: --refresh and the
    benchmarks must find the catalog's (the document one)."""
    from harnesslm.config import EncodingConfig
    from harnesslm.models.prompts import set_prompts
    from harnesslm.run.catalog_embeddings import item_cache_path, item_embeddings

    model = load_model(str(tiny_teacher))
    set_prompts(model, query="Q: ", document="D: ")
    run = SimpleNamespace(
        config=SimpleNamespace(encoding=EncodingConfig(backend="torch")),
        catalog=pd.DataFrame({"text": ["cordless drill", "paint roller", "copper pipe"]}),
        cache_dir=cache_env / "embeddings",
    )
    embeddings = item_embeddings(run, model, progress=False)  # type: ignore[arg-type]
    path = item_cache_path(run, model)  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.load(path), embeddings)
    assert path != cache_path(model, run.catalog["text"].tolist(), run.cache_dir, role="query")


def test_the_alignment_pool_targets_are_sharded_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large teacher encodes the pool's queries for as long as the catalog: that pass must be resumable too."""
    from harnesslm.config import EncodingConfig
    from harnesslm.pipeline.alignment_pool import _encoded_source

    seen: dict = {}

    def fake(model, texts, cache_dir, **kwargs):
        seen.update(kwargs, texts=texts)
        return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(sharded_encoding, "sharded_cached_encode", fake)
    run = SimpleNamespace(
        config=SimpleNamespace(encoding=EncodingConfig(workers=2, shard_size=500)), cache_dir=tmp_path
    )
    source = _encoded_source(run, object(), "train_queries", ["q1", "q2", "q3"], progress=False)  # type: ignore[arg-type]
    assert source.targets.shape == (3, 4)
    assert seen["role"] == "query" and seen["workers"] == 2 and seen["texts"] == ["q1", "q2", "q3"]


def test_each_shard_is_handed_over_as_soon_as_it_is_done() -> None:
    """A pass interrupted midway keeps its finished shards: results come as they finish, not all at the end."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()

    def slow() -> str:
        assert release.wait(timeout=30)
        return "slow"

    def failing() -> str:
        release.wait(timeout=30)
        raise RuntimeError("worker died")

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = sharded_encoding.as_finished([pool.submit(slow), pool.submit(lambda: "fast"), pool.submit(failing)])
        assert next(results) == "fast"  # while the slow one is still running
        release.set()
        with pytest.raises(RuntimeError, match="worker died"):
            list(results)

"""The sharded catalog pass on a real local Ray cluster (2 CPUs): the same embeddings as one process, an actor
killed mid-shard, a driver killed between shards, and a run's encodings through ``encoding.executor: ray``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harnesslm.encoding.cache import encode
from harnesslm.encoding.sharded import RAY_ACTOR_PREFIX, encode_sharded, shard_path
from harnesslm.models.model_loading import load_model

ray = pytest.importorskip("ray", reason="the Ray executor needs ray (pip install 'harness-lm[ray]')")

SHARD = 25


@pytest.fixture(scope="module")
def cluster():
    """A local Ray head with 2 CPUs, for this module only (its own temporary folder and ports)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="harnesslm-tests")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from harnesslm.demo.shop import make_demo_shop

    return make_demo_shop(n_products=300, n_queries=10, n_unlabeled=0).catalog["product_title"].tolist()


@pytest.fixture(scope="module")
def single(tiny_teacher: Path, texts: list[str]) -> np.ndarray:
    """What one process computes: the reference every Ray pass must equal."""
    return encode(load_model(str(tiny_teacher)), texts)


def ray_pass(tiny_teacher: Path, texts: list[str], out: Path, **kwargs) -> np.ndarray:
    return encode_sharded(
        str(tiny_teacher), texts, out, shard_size=SHARD, workers=2, executor="ray", progress=False, **kwargs
    )


def test_a_ray_pass_equals_one_process(cluster: str, tiny_teacher: Path, texts, single, tmp_path: Path) -> None:
    embeddings = ray_pass(tiny_teacher, texts, tmp_path / "shards")
    np.testing.assert_allclose(embeddings, single, atol=1e-5)
    assert len(list((tmp_path / "shards").glob("shard-*.npy"))) == -(-len(texts) // SHARD)
    assert not [name for name in ray.util.list_named_actors() if name.startswith(RAY_ACTOR_PREFIX)], "actors ended"


def test_an_actor_killed_mid_shard_is_restarted_and_the_pass_completes(
    cluster: str, tiny_teacher: Path, texts, single, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    many = texts * 12  # encoded one text per forward pass: the pass lasts seconds, so the kill lands mid-pass
    shards = -(-len(many) // SHARD)
    killed: list[str] = []
    saved_at_kill: list[int] = []

    def kill_one_actor() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            names = [name for name in ray.util.list_named_actors() if name.startswith(RAY_ACTOR_PREFIX)]
            if names and shard_path(out, 0).exists():  # the pass is under way: both actors hold a shard
                saved_at_kill.append(len(list(out.glob("shard-*.npy"))))
                ray.kill(ray.get_actor(names[0]), no_restart=False)
                killed.append(names[0])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_actor)
    killer.start()
    embeddings = ray_pass(tiny_teacher, many, out, batch_size=1)
    killer.join()
    assert killed and saved_at_kill[0] < shards, "an actor died while shards were still to encode"
    np.testing.assert_allclose(embeddings, np.tile(single, (12, 1)), atol=1e-5)
    assert sorted(p.name for p in out.glob("shard-*.npy")) == [shard_path(out, i).name for i in range(shards)]


DRIVER = """
import sys, ray
from harnesslm.encoding.sharded import encode_sharded
ray.init(address=sys.argv[1], namespace="harnesslm-tests", log_to_driver=False)
texts = open(sys.argv[3], encoding="utf-8").read().split("\\n")
encode_sharded(sys.argv[2], texts, sys.argv[4], shard_size=int(sys.argv[5]), workers=2, executor="ray", progress=False)
"""


def test_a_driver_killed_between_shards_resumes_without_losing_or_doubling_one(
    cluster: str, tiny_teacher: Path, texts, single, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    (tmp_path / "texts.txt").write_text("\n".join(texts), encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    args = [cluster, str(tiny_teacher), str(tmp_path / "texts.txt"), str(out), str(SHARD)]
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), *args], env={**os.environ})
    deadline = time.monotonic() + 180
    while len(list(out.glob("shard-*.npy"))) < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npy")}
    total = -(-len(texts) // SHARD)
    assert 3 <= len(kept) < total, f"the driver was to die mid-pass, with {len(kept)} of {total} shards saved"

    embeddings = ray_pass(tiny_teacher, texts, out)
    np.testing.assert_allclose(embeddings, single, atol=1e-5)
    now = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npy")}
    assert len(now) == total and all(now[name] == mtime for name, mtime in kept.items()), "saved shards kept"
    assert not list(out.glob("*.tmp*")), "no half-written shard left"


def test_a_run_encodes_catalog_and_queries_on_ray(cluster: str, demo_files, tiny_teacher, tmp_path: Path) -> None:
    from harnesslm.config import RunConfig
    from harnesslm.pipeline import steps
    from harnesslm.run.catalog_embeddings import encoded_texts, item_embeddings

    config = RunConfig.model_validate(
        {
            "data": {"catalog": {"path": demo_files["catalog"]}, "judgments": {"path": demo_files["judgments"]}},
            "teacher": {"model": str(tiny_teacher), "enabled": False},
            "encoding": {"workers": 2, "executor": "ray", "shard_size": 40},
            "students": [],
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    run = steps.prepare(config, tmp_path / "run")
    steps.teacher(run, progress=False)
    model = run.teacher
    items = item_embeddings(run, model, progress=False)
    np.testing.assert_allclose(items, encode(model, run.catalog["text"].tolist(), role="document"), atol=1e-5)
    queries = list(dict.fromkeys(run.split("train")["query"]))
    targets = encoded_texts(run, model, queries, "query", 32, progress=False)  # the alignment pool's targets
    np.testing.assert_allclose(targets, encode(model, queries, role="query"), atol=1e-5)

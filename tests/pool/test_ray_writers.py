"""The synthetic-query writer on a real local Ray cluster (2 CPUs): the same queries as one local writer, and an
actor killed mid-pass restarted without a title lost or written twice."""

from __future__ import annotations

import threading
import time

import pytest

from harnesslm.pool.synthetic_queries import QueryWriter

ray = pytest.importorskip("ray", reason="the Ray writer needs ray (pip install 'harness-lm[ray]')")
pytest.importorskip("gguf", reason="transformers reads SmolLM2's GGUF file with gguf (make install-llm)")

EXAMPLES = [
    ("cordless drill", "DEWALT 20-Volt Max Lithium-Ion Cordless Drill/Driver Kit"),
    ("toilet seat white", "Glacier Bay Round Closed Front Toilet Seat in White"),
    ("led bulbs 60w", "Philips 60-Watt Equivalent A19 LED Light Bulb Daylight (4-Pack)"),
]
TITLES = [
    "Husky 25 ft. Tape Measure",
    "Behr Premium Plus 1 gal. Flat Interior Paint",
    "Ryobi 18-Volt ONE+ Cordless Leaf Blower",
    "Moen Arbor Single-Handle Pull-Down Kitchen Faucet",
    "Werner 6 ft. Fiberglass Step Ladder",
    "Rust-Oleum Stops Rust 12 oz. Gloss Black Spray Paint",
]
SETTINGS = {"backend": "transformers", "seed": 3, "n_threads": 1, "max_new_tokens": 16, "rounds": 1}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="harnesslm-writer-tests")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local(smollm2) -> dict[str, list[str]]:
    writer = QueryWriter(EXAMPLES, model_path=smollm2, **SETTINGS)
    return {title: writer.write(title, 2) for title in TITLES}


def test_ray_actors_write_what_one_local_writer_writes(cluster, smollm2, local) -> None:
    from harnesslm.pool.ray_writers import RAY_ACTOR_PREFIX, write_on_ray

    chunks = list(write_on_ray(TITLES, EXAMPLES, 2, workers=2, chunk_size=2, model_path=smollm2, **SETTINGS))
    assert len(chunks) == 3 and sorted(t for c in chunks for t in c) == sorted(TITLES)
    assert {t: q for c in chunks for t, q in c.items()} == local
    assert any(local.values()), "the writer wrote something"
    assert not [n for n in ray.util.list_named_actors() if n.startswith(RAY_ACTOR_PREFIX)], "actors ended"


def test_an_actor_killed_mid_pass_is_restarted_and_no_title_is_lost_or_doubled(cluster, smollm2, local) -> None:
    from harnesslm.pool.ray_writers import RAY_ACTOR_PREFIX, write_on_ray

    killed: list[str] = []

    def kill_one() -> None:  # as soon as the actors exist, kill one of them mid-chunk
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            names = [n for n in ray.util.list_named_actors() if n.startswith(RAY_ACTOR_PREFIX)]
            if names:
                time.sleep(2.0)  # model loaded, a chunk under way
                ray.kill(ray.get_actor(names[0]), no_restart=False)
                killed.append(names[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    chunks = list(write_on_ray(TITLES, EXAMPLES, 2, workers=2, chunk_size=1, model_path=smollm2, **SETTINGS))
    killer.join()
    assert killed, "an actor was killed while titles were left"
    titles = [t for c in chunks for t in c]
    assert sorted(titles) == sorted(TITLES), "every title once"
    assert {t: q for c in chunks for t, q in c.items()} == local


def test_the_pool_step_writes_through_ray_when_asked(cluster, smollm2, local) -> None:
    from harnesslm.config import PoolConfig
    from harnesslm.pipeline.alignment_pool import _written

    cfg = PoolConfig(synthetic_executor="ray", synthetic_workers=2, synthetic_threads=1)
    into: dict[str, list[str]] = {}
    settings = {k: v for k, v in SETTINGS.items() if k in ("backend", "seed", "n_threads")}
    settings |= {"max_new_tokens": 16, "rounds": 1, "model_path": smollm2}
    done = list(_written(TITLES[:4], EXAMPLES, 2, settings, cfg, False, into))
    assert done[-1] == 4 and into == {t: local[t] for t in TITLES[:4]}

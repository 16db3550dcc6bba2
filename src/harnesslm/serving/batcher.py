"""Micro-batching: requests that arrive together are encoded in one encoder call."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Hashable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harnesslm.serving.searcher import Searcher

logger = logging.getLogger(__name__)

SearchResult = tuple[list[list[str]], np.ndarray]


@dataclass
class _Job:
    queries: list[str]
    k: int
    allowed_rows: np.ndarray | None
    filter_key: Hashable
    future: asyncio.Future = field(repr=False)
    queued_at: float = field(default_factory=time.perf_counter)
    overlapped: bool = False  # another request was queued or being served when this one came in
    # milliseconds spent on this job by stage (queue, encode, search), filled in by the worker: what the
    # service reports in its Server-Timing header
    timings: dict[str, float] = field(default_factory=dict)


class MicroBatcher:
    """Collect requests that arrive together and encode their queries in one encoder call.

    Why hand-written: FastAPI and uvicorn run each request on its own and have no request batching, yet a
    transformer encodes 32 queries in far less than 32 times the time of one. So requests put their queries
    on an asyncio queue drained by a single worker task: it takes the first waiting request, waits at most
    ``window_ms`` for more (or until ``max_batch`` queries are queued), encodes them all in one call in a
    worker thread (keeping the event loop free), searches the index once per (k, filter) group, and
    resolves each request's future. Under load the queue fills while a batch is being encoded, so batches
    grow by themselves. The window is waited only when requests overlap (the request came in while another
    was queued or being served, or the last batch held more than one): a lone client's request is encoded at
    once, since nothing could join it (the teacher's load test on Home Depot, stop 28: 2.3 of its 15.5 ms at 1
    client were this wait). Skipping the window whenever the last batch held one request was measured too and
    is worse: two clients per worker then alternate in batches of one (4 clients: p50 18.0 -> 24.6 ms).

    With ``enabled=False`` every request is encoded on its own (still in a thread, one encoder call at a
    time: fast tokenizers are not safe to share between threads), which is the baseline to compare with.
    With ``inline=True`` as well, it runs on the event loop itself: for an encoder and index that answer in
    a fraction of a millisecond (a static student over HNSW) the hop to a worker thread and back, and the GIL
    handed between the two, cost more than the work.
    The worker starts with the first request on the running event loop, so the batcher also works under
    ASGI transports that skip the app's lifespan.
    """

    def __init__(
        self,
        searcher: Searcher,
        window_ms: float = 2.0,
        max_batch: int = 64,
        enabled: bool = True,
        inline: bool = False,
    ) -> None:
        self.searcher = searcher
        self.inline = inline and not enabled
        self.window = window_ms / 1000
        self.max_batch = max_batch
        self.enabled = enabled
        self.encoder_calls = 0
        self.queries_encoded = 0
        self._encode_lock = threading.Lock()
        self._queue: asyncio.Queue[_Job] | None = None
        self._queued = 0
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._carry: _Job | None = None
        self._last_batch_jobs = 1
        self._busy = False

    # public ------------------------------------------------------------------------------------------
    async def search(
        self,
        queries: list[str],
        k: int,
        allowed_rows: np.ndarray | None = None,
        filter_key: Hashable = None,
        timings: dict[str, float] | None = None,
    ) -> SearchResult:
        """Top-``k`` ids and scores for ``queries`` (among ``allowed_rows``), batched with concurrent calls.

        ``timings``, when given, receives the milliseconds this request spent queued, encoding (its whole
        batch's encoder call) and searching the index.
        """
        loop = asyncio.get_running_loop()
        job = _Job(
            list(queries), k, allowed_rows, filter_key, loop.create_future(), timings={} if timings is None else timings
        )
        if not self.enabled or self._closed:
            if self.inline:
                result = self._process([job])[0]
            else:
                result = (await loop.run_in_executor(None, self._process, [job]))[0]
            if isinstance(result, BaseException):
                raise result
            return result
        self._ensure_worker(loop)
        assert self._queue is not None and self._full is not None
        job.overlapped = self._busy or self._queued > 0
        self._queue.put_nowait(job)
        self._queued += len(job.queries)
        if self._queued >= self.max_batch:
            self._full.set()
        return await job.future

    async def aclose(self, drain_seconds: float = 0.0) -> None:
        """Stop the worker; requests still queued fail. With ``drain_seconds`` (a pair swapped out), what is
        queued is answered first, for up to that long. A request that reaches a closed batcher (it read the old
        pair just before a swap) is answered on its own, without a worker."""
        deadline = time.perf_counter() + drain_seconds
        while self._pending_work() and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        self._closed = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
        self._fail_pending(RuntimeError("the search service is shutting down"))
        self._worker = None

    def _pending_work(self) -> bool:
        return self._worker is not None and (self._queued > 0 or self._busy or self._carry is not None)

    def stats(self) -> dict[str, Any]:
        calls = self.encoder_calls
        return {
            "enabled": self.enabled,
            "inline": self.inline,
            "window_ms": self.window * 1000,
            "max_encode_batch": self.max_batch,
            "encoder_calls": calls,
            "queries": self.queries_encoded,
            "mean_batch": self.queries_encoded / calls if calls else 0.0,
        }

    # worker ------------------------------------------------------------------------------------------
    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        self._loop = loop
        self._queue = asyncio.Queue()
        self._full = asyncio.Event()
        self._queued = 0
        self._carry = None
        self._last_batch_jobs, self._busy = 1, False
        self._worker = loop.create_task(self._run(), name="harnesslm-micro-batcher")

    async def _run(self) -> None:
        assert self._queue is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry if self._carry is not None else await self._queue.get()
            self._carry = None
            overlapping = first.overlapped or self._last_batch_jobs > 1
            if self.window > 0 and overlapping and self._queued < self.max_batch:
                self._full.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.window)
            jobs = self._drain(first)
            self._last_batch_jobs = len(jobs)
            self._queued -= sum(len(job.queries) for job in jobs)
            self._busy = True
            try:
                results = await loop.run_in_executor(None, self._process, jobs)
            except Exception as error:  # every waiting request must hear about it
                logger.exception("search batch failed")
                results = [error] * len(jobs)
            finally:
                self._busy = False
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _drain(self, first: _Job) -> list[_Job]:
        """``first`` plus queued jobs while they fit in ``max_batch`` queries; one that does not waits."""
        assert self._queue is not None
        jobs, size = [first], len(first.queries)
        while size < self.max_batch and not self._queue.empty():
            job = self._queue.get_nowait()
            if size + len(job.queries) > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            size += len(job.queries)
        return jobs

    def _fail_pending(self, error: BaseException) -> None:
        pending = [self._carry] if self._carry is not None else []
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            if not job.future.done():
                job.future.set_exception(error)
        self._carry = None
        self._queued = 0

    def _process(self, jobs: list[_Job]) -> list[SearchResult | BaseException]:
        """In a worker thread: one encoder call for every job's queries, one index search per (k, filter).

        When the batch fails, each job is retried alone, so a request that breaks the encoder fails by
        itself and its batch-mates still get their results.
        """
        try:
            return list(self._process_together(jobs))
        except Exception as error:
            if len(jobs) == 1:
                return [error]
            logger.warning("a search batch of %d requests failed (%s); retrying them one by one", len(jobs), error)
            results: list[SearchResult | BaseException] = []
            for job in jobs:
                try:
                    results.extend(self._process_together([job]))
                except Exception as single:
                    results.append(single)
            return results

    def _process_together(self, jobs: list[_Job]) -> list[SearchResult]:
        queries = [q for job in jobs for q in job.queries]
        with self._encode_lock:
            started = time.perf_counter()
            for job in jobs:
                job.timings["queue"] = (started - job.queued_at) * 1000
            embeddings = self.searcher.encode(queries, batch_size=max(len(queries), 1))
            encoded = time.perf_counter()
            self.encoder_calls += 1
            self.queries_encoded += len(queries)
        for job in jobs:
            job.timings["encode"] = (encoded - started) * 1000
        starts = np.cumsum([0, *(len(job.queries) for job in jobs)])
        groups: dict[tuple[int, Hashable], list[int]] = {}
        for j, job in enumerate(jobs):
            groups.setdefault((job.k, job.filter_key), []).append(j)
        results: list[SearchResult | None] = [None] * len(jobs)
        for (k, _), members in groups.items():
            rows = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in members])
            searched = time.perf_counter()
            ids, scores = self.searcher.index.search(embeddings[rows], k, allowed_rows=jobs[members[0]].allowed_rows)
            search_ms = (time.perf_counter() - searched) * 1000
            offset = 0
            for j in members:
                jobs[j].timings["search"] = search_ms
                n = len(jobs[j].queries)
                results[j] = (ids[offset : offset + n], scores[offset : offset + n])
                offset += n
        return [r for r in results if r is not None]

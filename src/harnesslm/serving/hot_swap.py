"""Swap the served encoder and index without a restart: on ``POST /admin/reload``, on ``SIGHUP``, or when the
files the service was loaded from change.

A swap loads the new :class:`~harnesslm.serving.http_app.ServedPair` in a worker thread while the old one keeps
answering, checks that the new encoder was trained for the new index (the teacher-space fingerprint), and only
then replaces the pair in one assignment on the event loop: a request reads the pair once, so it sees the old
pair or the new one, never a student with another index. A pair that fails to load or does not belong together
is refused and the old one keeps serving. The old pair's micro-batcher finishes what was queued before it
closes. Swaps are serialised: a trigger during a swap waits for it.

Why hand-written: uvicorn's ``--reload`` restarts the process (requests in flight are dropped and the index
is loaded again before the port answers), and neither FastAPI nor Starlette has a notion of a model to swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Header, HTTPException

if TYPE_CHECKING:
    from harnesslm.serving.http_app import SearchCore, ServedPair

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
"""How long the old pair's batcher may take to answer what was queued before the swap."""


@dataclass(frozen=True)
class Reloading:
    """How an app swaps its pair: what ``create_app(reload=...)`` takes.

    Args:
        load: loads and returns a new pair (runs in a worker thread; raises to refuse the swap).
        watched: returns a value that changes when the served files change (their mtimes); None: no polling.
        poll_seconds: how often ``watched`` is read (0: never).
        admin_token: the bearer token of ``POST /admin/reload`` (None: the endpoint answers 403).
        on_sighup: swap on ``SIGHUP``.
    """

    load: Callable[[], ServedPair]
    watched: Callable[[], Hashable] | None = None
    poll_seconds: float = 0.0
    admin_token: str | None = None
    on_sighup: bool = True


class HotSwap:
    """Replace ``core.served`` with what ``reload`` loads, on demand, on SIGHUP or when ``watched()`` changes.

    Args:
        core: the app's search core, whose ``served`` pair is replaced.
        reload: loads and returns a new pair (runs in a worker thread; may raise to refuse the swap).
        watched: returns a value that changes when the served files change (e.g. their mtimes); polled
            every ``poll_seconds`` (0: no polling). A change is acted on once the value has stayed the same
            for one more poll, so a swap does not start between two files of one update.
        poll_seconds: the polling interval.
        on_sighup: swap on ``SIGHUP`` (only where the event loop runs in the main thread, as under uvicorn).
    """

    def __init__(
        self,
        core: SearchCore,
        reload: Callable[[], ServedPair],
        watched: Callable[[], Hashable] | None = None,
        poll_seconds: float = 0.0,
        on_sighup: bool = True,
    ) -> None:
        self.core = core
        self.reload = reload
        self.watched = watched
        self.poll_seconds = poll_seconds
        self.on_sighup = on_sighup
        self.swaps = 0
        self.refused = 0
        self.last: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._signal_installed = False

    # triggers --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Install the SIGHUP handler and start polling (called from the app's lifespan)."""
        loop = asyncio.get_running_loop()
        if self.on_sighup and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on Windows
                loop.add_signal_handler(signal.SIGHUP, self._spawn, "SIGHUP")
                self._signal_installed = True
        if self.watched is not None and self.poll_seconds > 0:
            self._keep(loop.create_task(self._poll(), name="harnesslm-hot-swap-poll"))

    async def stop(self) -> None:
        if self._signal_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_installed = False
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, reason: str) -> None:
        self._keep(asyncio.get_running_loop().create_task(self.swap(reason)))

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self) -> None:
        assert self.watched is not None
        loop = asyncio.get_running_loop()
        served_state = await loop.run_in_executor(None, self.watched)
        previous = served_state
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                state = await loop.run_in_executor(None, self.watched)
            except OSError as error:  # a file replaced between two stat calls: read again next time
                logger.debug("hot swap: cannot read the watched files (%s)", error)
                continue
            if state != served_state and state == previous:  # changed, and settled for one poll
                outcome = await self.swap("files changed")
                served_state = state  # a refused pair is not tried again until the files change again
                if not outcome["swapped"]:
                    logger.warning("hot swap refused: %s", outcome["error"])
            previous = state

    # the swap itself -------------------------------------------------------------------------------------
    async def swap(self, reason: str) -> dict[str, Any]:
        """Load a new pair and serve it, or keep the old one; what happened, as :meth:`stats` reports it."""
        async with self._lock:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                new = await loop.run_in_executor(None, self.reload)
            except Exception as error:  # any failure to load keeps the old pair: the service must not stop
                self.refused += 1
                logger.warning("hot swap (%s) refused, the old pair keeps serving: %s", reason, error)
                self.last = _outcome(False, reason, started, error=f"{type(error).__name__}: {error}")
                return self.last
            old, self.core.served = self.core.served, new
            self.swaps += 1
            self.last = _outcome(True, reason, started, model=new.model.name, items=int(new.index.meta.size))
            logger.info("hot swap (%s): now serving %s over %d items", reason, new.model.name, new.index.meta.size)
            self._keep(loop.create_task(old.batcher.aclose(drain_seconds=DRAIN_SECONDS)))
            return self.last

    def stats(self) -> dict[str, Any]:
        return {"swaps": self.swaps, "refused": self.refused, "last": self.last}


def _outcome(swapped: bool, reason: str, started: float, **details: Any) -> dict[str, Any]:
    took = round((time.perf_counter() - started) * 1000, 1)
    return {"swapped": swapped, "reason": reason, "took_ms": took, "error": None} | details


def add_admin_route(app: FastAPI, swapper: HotSwap, token: str | None) -> None:
    """``POST /admin/reload``: swap now. Needs ``Authorization: Bearer <token>``; without a token configured
    the endpoint answers 403 (a reload loads a model and an index: not for anyone who can reach the port)."""

    @app.post("/admin/reload", summary="Load the run's encoder and index again and serve them without a restart")
    async def admin_reload(authorization: str | None = Header(None)) -> dict[str, Any]:
        if not token:
            raise HTTPException(403, "the admin endpoint is off: start the service with an admin token")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "wrong or missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        outcome = await swapper.swap("admin endpoint")
        if not outcome["swapped"]:
            raise HTTPException(409, f"swap refused, the old pair keeps serving: {outcome['error']}")
        return outcome

"""Several uvicorn worker processes behind one acceptor that hands each new connection to the least-loaded worker.

Why not uvicorn's (or gunicorn's) ``--workers``: there every worker accepts from one shared listening socket, and
the worker that wakes first accepts every connection waiting in the queue. Keep-alive clients that connect
together therefore land unevenly and stay there: 16 wrk connections to 2 workers split 6/10, 10/6, 13/3, 8/8 and
6/10 in five tries here, and the p99 at 16 clients swung between 13 and 21 ms with the split. ``SO_REUSEPORT``
spreads connections by a hash, which is just as uneven for a handful of long-lived connections. Node's cluster
module solves this the same way as this module: the primary process accepts and passes each socket to a worker.

The acceptor (this process) keeps no request on its path: it accepts, sends the file descriptor over a Unix
socket pair (``SCM_RIGHTS``) and forgets it; the worker serves the connection with uvicorn's own HTTP protocol.
Each worker reports a byte per closed connection, so the acceptor always knows how many each one holds.
Unix only (``socket.send_fds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger(__name__)

#: A worker sends this byte on its channel once its app has started: only then does it get connections.
READY = b"r"
#: A worker reports this byte on its channel each time one of its connections closes.
CLOSED = b"x"
#: The listening socket's backlog: room for a burst of clients connecting at once.
BACKLOG = 2048
#: A worker that dies this soon after its start is not restarted (it would die again: a broken app).
MIN_UPTIME_S = 5.0


@dataclass
class _Worker:
    """One worker process as the acceptor sees it: its channel and how many connections it holds."""

    index: int
    process: BaseProcess
    channel: socket.socket
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    ready: bool = False


def serve_workers(
    app: str,
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool = False,
    factory: bool = True,
    min_uptime_s: float = MIN_UPTIME_S,
    pin_cpus: bool = False,
) -> int:
    """Serve the ASGI app at import path ``app`` (``module:name``; with ``factory``, a function that makes it)
    from ``workers`` processes until SIGINT or SIGTERM. A worker that dies is replaced, unless it lived less
    than ``min_uptime_s``: then the app is broken and the server stops. ``pin_cpus`` keeps worker ``i`` on the
    ``i``-th core this process may use (round robin), so the kernel never moves a worker and its caches.

    Returns the exit status: 0 after a signal, 1 when a worker died right after its start.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not hasattr(socket, "send_fds"):  # pragma: no cover - Windows
        raise RuntimeError("serving several workers needs Unix file-descriptor passing (socket.send_fds)")
    stop = _StopFlag()  # before the workers start: a Ctrl+C during their start-up still stops them cleanly
    listener = _listen(host, port)
    context = multiprocessing.get_context("spawn")
    cpus = sorted(os.sched_getaffinity(0)) if pin_cpus and hasattr(os, "sched_getaffinity") else []

    def spawn(index: int) -> _Worker:
        return _spawn(context, index, app, factory, access_log, cpus[index % len(cpus)] if cpus else None)

    pool = [spawn(index) for index in range(workers)]
    logger.info("serving on http://%s:%d with %d workers", host, listener.getsockname()[1], workers)
    try:
        return _accept_loop(listener, pool, stop, spawn, min_uptime_s)
    finally:
        listener.close()
        _stop_all(pool)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    return listener


def _spawn(context: Any, index: int, app: str, factory: bool, access_log: bool, cpu: int | None) -> _Worker:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    process = context.Process(
        target=run_worker, args=(theirs, app, factory, access_log, cpu), name=f"harness-worker-{index}", daemon=False
    )
    process.start()
    theirs.close()
    ours.setblocking(False)
    return _Worker(index=index, process=process, channel=ours)


class _StopFlag:
    """Set by SIGINT / SIGTERM; the acceptor's selector is woken through a self-pipe."""

    def __init__(self) -> None:
        self.set = False
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.set = True
        with contextlib.suppress(OSError):
            self.wake_write.send(b"\0")


def _accept_loop(
    listener: socket.socket,
    pool: list[_Worker],
    stop: _StopFlag,
    respawn: Callable[[int], _Worker],
    min_uptime_s: float,
) -> int:
    selector = selectors.DefaultSelector()
    selector.register(stop.wake_read, selectors.EVENT_READ, "stop")
    for worker in pool:
        selector.register(worker.channel, selectors.EVENT_READ, worker)
    accepting = False
    while not stop.set:
        # Connections wait in the listen backlog until every worker has started (a connection handed to a worker
        # still loading its model would stall for seconds), and while none is ready after a restart.
        should_accept = all(w.ready for w in pool) if not accepting else any(w.ready for w in pool)
        if should_accept and not accepting:
            selector.register(listener, selectors.EVENT_READ, "accept")
        elif accepting and not should_accept:
            selector.unregister(listener)
        accepting = should_accept
        for key, _ in selector.select():
            if key.data == "accept":
                _accept_all(listener, pool)
            elif isinstance(key.data, _Worker) and not _read_channel(key.data):
                worker = key.data
                selector.unregister(worker.channel)
                worker.channel.close()
                worker.process.join(timeout=5)
                if not worker.ready or time.monotonic() - worker.started < min_uptime_s:
                    logger.error("worker %d exited at start-up (code %s)", worker.index, worker.process.exitcode)
                    return 1
                logger.warning("worker %d died (code %s); starting another", worker.index, worker.process.exitcode)
                pool[worker.index] = respawn(worker.index)
                selector.register(pool[worker.index].channel, selectors.EVENT_READ, pool[worker.index])
    return 0


def _accept_all(listener: socket.socket, pool: list[_Worker]) -> None:
    """Accept every waiting connection, each to the worker holding the fewest (ties: the lowest index)."""
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        with connection:
            for worker in sorted((w for w in pool if w.ready), key=lambda w: w.connections):
                try:
                    socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
                except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                    continue  # dead or stuck worker: try the next one
                worker.connections += 1
                break


def _read_channel(worker: _Worker) -> bool:
    """Count the worker's closed connections; False when its channel closed (the worker exited)."""
    try:
        data = worker.channel.recv(4096)
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    worker.connections = max(0, worker.connections - data.count(CLOSED))
    worker.ready = worker.ready or READY in data
    return bool(data)


def _stop_all(pool: list[_Worker], timeout: float = 10.0) -> None:
    for worker in pool:
        if worker.process.is_alive():
            os.kill(worker.process.pid, signal.SIGTERM)  # uvicorn's graceful shutdown
    deadline = time.monotonic() + timeout
    for worker in pool:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.channel.close()


def run_worker(channel: socket.socket, app: str, factory: bool, access_log: bool, cpu: int | None = None) -> None:
    """A worker process: uvicorn serving the connections that arrive on ``channel`` (on core ``cpu`` only, when
    given: set before the app loads, so its thread pools size themselves to that one core)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import uvicorn

    config = uvicorn.Config(app, factory=factory, access_log=access_log, lifespan="on")
    server = _channel_server_class()(config, channel)
    server.run()
    sys.exit(0 if server.started else 3)


def _channel_server_class() -> type:
    """The worker's server class; built on call so that importing this module does not import uvicorn."""
    import uvicorn

    class ChannelServer(uvicorn.Server):
        """uvicorn's server with connections from a channel instead of a listening socket.

        Overrides ``startup`` only: the lifespan, the HTTP protocol (httptools on uvloop when installed), the
        connection bookkeeping, graceful shutdown and signal handling are uvicorn's own.
        """

        def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
            super().__init__(config)
            self.channel = channel

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                sys.exit(3)
            loop = asyncio.get_running_loop()
            self.servers = []
            self.channel.setblocking(False)
            loop.add_reader(self.channel.fileno(), self._receive, loop)
            self.channel.send(READY)
            self.started = True

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
            await super().shutdown(sockets)

        def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
            try:
                messages, fds, _, _ = socket.recv_fds(self.channel, 1024, 256)
            except BlockingIOError:
                return
            if not messages and not fds:  # the acceptor exited
                self.should_exit = True
                loop.remove_reader(self.channel.fileno())
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)
                loop.create_task(loop.connect_accepted_socket(self._protocol, connection))

        def _protocol(self) -> asyncio.Protocol:
            protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state, app_state=self.lifespan.state
            )
            lost = protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                lost(exc)
                with contextlib.suppress(OSError):
                    self.channel.send(CLOSED)

            protocol.connection_lost = connection_lost  # type: ignore[method-assign]
            return protocol

    return ChannelServer

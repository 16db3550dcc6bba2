"""Several worker processes behind one acceptor: connections spread by load, dead workers replaced, clean stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytestmark = pytest.mark.skipif(not hasattr(socket, "send_fds"), reason="needs Unix file-descriptor passing")

APP = '''
import os

def make():
    """Answers its worker's pid (GET /cpus: the cores it may run on); GET /die ends the worker; BROKEN=1 fails
    at start-up."""
    if os.environ.get("BROKEN") == "1":
        raise RuntimeError("this app does not start")

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/die":
            os._exit(7)
        body = os.getpid() if scope["path"] != "/cpus" else ",".join(map(str, sorted(os.sched_getaffinity(0))))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(body).encode()})

    return app
'''


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(
    tmp_path: Path, workers: int, min_uptime_s: float = 0.0, pin_cpus: bool = False, **env: str
) -> tuple[subprocess.Popen, int]:
    (tmp_path / "pid_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    port = _free_port()
    code = (
        "import sys\nfrom harnesslm.serving.workers import serve_workers\n"
        f"sys.exit(serve_workers('pid_app:make', host='127.0.0.1', port={port}, workers={workers}, "
        f"min_uptime_s={min_uptime_s}, pin_cpus={pin_cpus}))"
    )
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]), **env}
    process = subprocess.Popen([sys.executable, "-c", code], env=environ, stderr=subprocess.PIPE, text=True)
    return process, port


def _connect(port: int, timeout: float = 60.0) -> http.client.HTTPConnection:
    """A keep-alive connection that has been answered once (so it is held by a worker)."""
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.connect()
            return connection
        except ConnectionRefusedError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _pid(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200
    return int(response.read())


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_connections_go_to_the_worker_holding_fewest(tmp_path):
    process, port = _start(tmp_path, workers=2)
    try:
        first = [_connect(port) for _ in range(6)]
        pids = [_pid(c) for c in first]
        counts = Counter(pids)
        assert len(counts) == 2 and set(counts.values()) == {3}, counts
        # Keep-alive: a connection stays with its worker.
        assert [_pid(c) for c in first] == pids
        # One worker's connections close: the next ones all go to it, as it now holds none.
        emptied = pids[0]
        for connection, pid in zip(first, pids, strict=True):
            if pid == emptied:
                connection.close()
        time.sleep(0.5)  # the worker reports the closes to the acceptor
        later = [_connect(port) for _ in range(3)]
        assert [_pid(c) for c in later] == [emptied] * 3
        for connection in first + later:
            connection.close()
    finally:
        assert _stop(process) == 0


def test_a_dead_worker_is_replaced(tmp_path):
    process, port = _start(tmp_path, workers=2)
    try:
        doomed = _connect(port)
        dead_pid = _pid(doomed)
        doomed.request("GET", "/die")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            doomed.getresponse()
        doomed.close()

        def replaced() -> bool:
            connections = [_connect(port) for _ in range(4)]
            try:
                pids = {_pid(c) for c in connections}
            except (http.client.RemoteDisconnected, ConnectionError):
                # handed over in the instant the worker was dying, before the acceptor saw its channel close
                return False
            finally:
                for connection in connections:
                    connection.close()
            return len(pids) == 2 and dead_pid not in pids

        _wait_for(replaced)
    finally:
        assert _stop(process) == 0


def test_a_broken_app_stops_the_server(tmp_path):
    process, _ = _start(tmp_path, workers=2, min_uptime_s=5.0, BROKEN="1")
    try:
        assert process.wait(timeout=60) == 1
        assert "exited at start-up" in process.stderr.read()
    finally:
        _stop(process)


def test_sigterm_stops_the_workers(tmp_path):
    process, port = _start(tmp_path, workers=2)
    connection = _connect(port)
    pids = {_pid(connection)} | {_pid(_connect(port))}
    assert _stop(process) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity (Linux)")
def test_pinned_workers_each_keep_one_core(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    process, port = _start(tmp_path, workers=2, pin_cpus=True)
    try:
        connections = [_connect(port) for _ in range(2)]
        cores = []
        for connection in connections:
            connection.request("GET", "/cpus")
            cores.append(connection.getresponse().read().decode())
        assert [c.isdigit() for c in cores] == [True, True], cores  # one core each
        assert sorted(int(c) for c in cores) == sorted(allowed[i % len(allowed)] for i in range(2))
        for connection in connections:
            connection.close()
    finally:
        assert _stop(process) == 0

"""The real model host (`python -m server`) on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


@contextmanager
def spawn_server(
    artifacts: Path,
    web: Path | None = None,
    timeout: float = 30,
    extra_args: tuple[str, ...] = (),
    nofile: int | None = None,
) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """Runs `python -m server` on a free loopback port (at most `nofile` open fds when given);
    yields (host, port, process). Its log goes to a file, never a pipe nobody reads."""
    port = free_port()
    # prlimit (util-linux), not preexec_fn: a fork hook is unsafe in a threaded test process.
    args = ["prlimit", f"--nofile={nofile}:{nofile}"] if nofile is not None else []
    args += [sys.executable, "-m", "server", "--artifacts", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--log-level", "warning", *extra_args]
    if web is not None:
        args += ["--web", str(web)]

    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _LOGS[proc.pid] = log
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited ({proc.returncode}): {server_log(proc)[-2000:]}")
                try:
                    if _healthy(port):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield "127.0.0.1", port, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _LOGS.pop(proc.pid, None)


# pid -> the server's log file, for server_log() while the process runs.
_LOGS: dict[int, IO[bytes]] = {}


def server_log(proc: subprocess.Popen[bytes]) -> str:
    """Everything the server printed so far."""
    log = _LOGS[proc.pid]
    log.seek(0)
    return log.read().decode(errors="replace")


@contextmanager
def live_server(artifacts: Path, web: Path | None = None, timeout: float = 30) -> Iterator[tuple[str, int]]:
    """Runs `python -m server` on a free loopback port; yields (host, port)."""
    with spawn_server(artifacts, web, timeout) as (host, port, _):
        yield host, port

"""Issue #12: the Python server under hostile and unlucky clients, on a real uvicorn over loopback.

Every test is bounded in time and count, stops its own clients, and prints its figures (the
README's reliability section quotes them). The server runs with a short request deadline (2 s)
so the timeouts bite within the test.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.limits import HEADER_BYTES
from server_support import (
    FILE_SIZES,
    MODEL_ID,
    REPO,
    build_artifacts,
    commit_model,
    free_port,
    random_files,
    request,
    server_log,
    sha256,
    spawn_server,
)

DEADLINE_S = 2.0
BIG = f"{MODEL_ID}/onnx/model_q4.onnx"  # 3 MiB + 17


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("limits")
    return {"root": base / "artifacts", "files": build_artifacts(base / "artifacts")}


def healthz_ms(host: str, port: int) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        assert request(conn, "/healthz").status == 200
    finally:
        conn.close()
    return (time.monotonic() - started) * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------- 1. header flood


def flood_header(host: str, port: int, total: int) -> tuple[int, int]:
    """Streams one endless header value (up to `total` bytes); returns (bytes the server took, status)."""
    sent = 0
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Flood: ")
        piece = b"a" * 65536
        try:
            while sent < total:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            status = int(sock.recv(4096).split()[1])
        except (ConnectionResetError, IndexError):
            status = 0
    return sent, status


def test_header_flood_is_cut_at_the_limit_and_never_stalls_other_clients(site: dict) -> None:
    with spawn_server(site["root"]) as (host, port, proc):
        baseline = [healthz_ms(host, port) for _ in range(20)]
        with ThreadPoolExecutor(4) as pool:
            floods = [pool.submit(flood_header, host, port, 64 << 20) for _ in range(4)]  # 4 x at most 64 MB
            during = []
            while not all(f.done() for f in floods):
                during.append(healthz_ms(host, port))
            results = [f.result() for f in floods]
        log = server_log(proc)
    print(
        f"\nheader flood: 4 clients, taken {[s // 1024 for s, _ in results]} KB before refusal, statuses "
        f"{[st for _, st in results]}; /healthz median {statistics.median(baseline):.1f} ms before, "
        f"{statistics.median(during or [0]):.1f} ms (max {max(during or [0]):.1f}) during"
    )
    for sent, status in results:
        assert sent < 8 << 20, "the server kept reading a header far past its limit"
        assert status in (431, 0)  # 0: reset before the client read (the 431 was still sent first)
    assert any(status == 431 for _, status in results)
    assert max(during or [0]) < 1000
    assert "oversized request head" in log


def head_accepted_before_refusal(host: str, port: int, total: int) -> tuple[int, bytes]:
    """Sends a request head of `total` bytes that never ends; returns (bytes sent, the first reply bytes)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sent = 0
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Flood: ")
        try:
            while sent < total:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
        sock.settimeout(1)
        try:
            return sent, sock.recv(64)
        except (TimeoutError, ConnectionResetError):
            return sent, b""


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_the_parser_choice_h11_refuses_a_huge_head_httptools_does_not(site: dict, parser: str) -> None:
    """Why server/cli.py pins h11: with uvicorn's own settings, httptools keeps reading a head that
    never ends (the issue measured 128 MB accepted, 256 MB in 154 s), h11 answers 431 at its limit."""
    port = free_port()
    code = (
        "import sys, uvicorn; from pathlib import Path; from server.app import create_app; "
        f"uvicorn.run(create_app(Path(sys.argv[1]), None), host='127.0.0.1', port={port}, http='{parser}', "
        f"h11_max_incomplete_event_size={HEADER_BYTES}, log_level='critical')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(site["root"])], cwd=REPO)
    try:
        wait_for_port(port)
        sent, reply = head_accepted_before_refusal("127.0.0.1", port, 8 << 20)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"\n{parser}: {sent >> 10} KB of a never-ending head sent; reply {reply[:12]!r}")
    if parser == "h11":  # plain uvicorn says 400; our protocol class says 431 (test above)
        assert reply.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    else:  # still reading after 8 MB: no reply at all
        assert reply == b"" and sent >= 8 << 20


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_many_header_fields_are_431(site: dict) -> None:
    with spawn_server(site["root"]) as (host, port, _):
        head = "".join(f"X-F{i}: 1\r\n" for i in range(150))  # 150 fields, 1.5 KB: under the byte limit
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: a\r\n{head}Connection: close\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 431")
        assert len(head) < HEADER_BYTES


# ---------------------------------------------------------------- 2. idle and partial-head sockets at 256 fds


def test_idle_and_partial_head_sockets_cannot_exhaust_a_256_fd_server(site: dict) -> None:
    flood = 600
    with spawn_server(site["root"], extra_args=("--request-timeout", str(DEADLINE_S)), nofile=256) as (
        host,
        port,
        proc,
    ):
        socks: list[socket.socket] = []
        try:
            for i in range(flood):
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect((host, port))
                socks.append(sock)
                if i % 2:  # every other one starts a request head and never finishes it
                    select.select([], [sock], [], 1)
                    with contextlib.suppress(OSError):
                        sock.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            probes = [healthz_ms(host, port) for _ in range(20)]  # while all 600 are open
            # The deadline closes whatever the cap did not evict: every flood socket sees EOF.
            open_socks = set(socks)
            until = time.monotonic() + DEADLINE_S + 8
            while open_socks and time.monotonic() < until:
                readable, _, _ = select.select(list(open_socks)[:500], [], [], 0.5)
                for sock in readable:
                    try:
                        if sock.recv(4096) == b"":
                            open_socks.discard(sock)
                    except (ConnectionResetError, BlockingIOError):
                        open_socks.discard(sock)
            still_open = len(open_socks)
        finally:
            for sock in socks:
                sock.close()
        after = [healthz_ms(host, port) for _ in range(5)]
        log = server_log(proc)
    print(
        f"\nidle flood: {flood} sockets (half with a partial head) at RLIMIT_NOFILE 256: /healthz "
        f"median {statistics.median(probes):.1f} ms, max {max(probes):.1f} ms; still open after "
        f"{DEADLINE_S + 8:.0f} s: {still_open}"
    )
    assert max(probes) < 2000 and max(after) < 2000
    assert still_open == 0
    assert "closed the oldest idle connection" in log


def test_a_trickled_head_is_closed_at_the_deadline(site: dict) -> None:
    with (
        spawn_server(site["root"], extra_args=("--request-timeout", str(DEADLINE_S))) as (host, port, _),
        socket.create_connection((host, port), timeout=DEADLINE_S + 5) as sock,
    ):
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        closed_at = None
        for _ in range(int(DEADLINE_S * 4) + 8):  # one header byte every 0.25 s: keeps uvicorn's timer alive
            time.sleep(0.25)
            try:
                sock.sendall(b"X")
            except OSError:
                closed_at = time.monotonic() - started
                break
        if closed_at is None:
            sock.settimeout(1)
            closed_at = time.monotonic() - started if sock.recv(1) == b"" else None
    assert closed_at is not None and closed_at < DEADLINE_S + 2.5, closed_at


# ---------------------------------------------------------------- 3. re-export while serving


def range_client(host: str, port: int, versions: dict[str, bytes], stop: threading.Event, seed: int) -> dict:
    """Random ranges of BIG over keep-alive until `stop`; every body checked against the version its ETag names."""
    rng = random.Random(seed)
    counts = {"responses": 0, "bytes": 0, "truncated": 0, "wrong": 0, "other": 0}
    conn = http.client.HTTPConnection(host, port, timeout=30)
    size = FILE_SIZES["onnx/model_q4.onnx"]
    while not stop.is_set():
        start = rng.randrange(size)
        end = min(size - 1, start + rng.randrange(1, 1 << 20))
        try:
            reply = request(conn, f"/models/{BIG}", {"Range": f"bytes={start}-{end}"})
        except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError):
            counts["truncated"] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            continue
        if reply.status != 206:
            counts["other"] += 1
            counts.setdefault(f"status {reply.status}", 0)
            counts[f"status {reply.status}"] += 1
            continue
        counts["responses"] += 1
        counts["bytes"] += len(reply.body)
        data = versions.get(reply.headers["etag"].strip('"'))
        if data is None or data[start : end + 1] != reply.body:
            counts["wrong"] += 1
    conn.close()
    return counts


def test_reexport_under_load_truncates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    first = random_files(100)
    commit_model(root, MODEL_ID, first)
    versions = {sha256(first["onnx/model_q4.onnx"]): first["onnx/model_q4.onnx"]}
    exports = 12
    with spawn_server(root) as (host, port, _):
        stop = threading.Event()
        with ThreadPoolExecutor(8) as pool:
            clients = [pool.submit(range_client, host, port, versions, stop, seed) for seed in range(8)]
            for i in range(exports):
                files = random_files(200 + i)
                versions[sha256(files["onnx/model_q4.onnx"])] = files["onnx/model_q4.onnx"]  # before it is visible
                commit_model(root, MODEL_ID, files)  # the store deletes the superseded revision
                time.sleep(0.3)
            stop.set()
            totals = {key: sum(c.result().get(key, 0) for c in clients) for c in clients for key in c.result()}
    print(
        f"\nre-export under load: {exports} re-exports, 8 clients, {totals['responses']} range responses, "
        f"{totals['bytes'] / 1e6:.0f} MB verified; truncated {totals['truncated']}, wrong {totals['wrong']}, "
        f"other statuses {totals['other']}"
    )
    assert totals["responses"] > 100
    assert totals["truncated"] == 0 and totals["wrong"] == 0 and totals["other"] == 0


# ---------------------------------------------------------------- 4. slow readers


def test_slow_readers_cost_bounded_memory_and_do_not_stall_others(site: dict) -> None:
    readers = 200
    with spawn_server(site["root"]) as (host, port, proc):
        before = rss_mb(proc.pid)
        socks = []
        try:
            for _ in range(readers):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel must not absorb the file
                sock.connect((host, port))
                sock.sendall(f"GET /models/{BIG} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                socks.append(sock)
            time.sleep(2)  # every response has filled what it can and waits on the reader
            probes = [healthz_ms(host, port) for _ in range(20)]
            peak = rss_mb(proc.pid)
        finally:
            for sock in socks:
                sock.close()
    per_reader_kb = (peak - before) * 1024 / readers
    print(
        f"\nslow readers: {readers} stalled downloads of a 3 MiB file: server RSS {before:.0f} -> {peak:.0f} MB "
        f"({per_reader_kb:.0f} KB each); /healthz median {statistics.median(probes):.1f} ms, max {max(probes):.1f}"
    )
    assert per_reader_kb < 700  # 256 KiB read chunk + the transport's high-water mark, with slack
    # Medians: single probes on this shared 2-core machine have taken up to 3 s under any load.
    assert statistics.median(probes) < 250 and max(probes) < 5000


def test_a_fifo_at_a_listed_path_is_refused_without_blocking(tmp_path: Path) -> None:
    """open() of a FIFO waits for a writer: the catalog opens files non-blocking and refuses non-files."""
    from contract.manifest import load_manifest, revision_dir
    from server.catalog import Catalog

    build_artifacts(tmp_path / "artifacts")
    model = load_manifest(tmp_path / "artifacts").models[0]
    path = revision_dir(tmp_path / "artifacts", model) / "config.json"
    path.unlink()
    os.mkfifo(path)
    started = time.monotonic()
    assert Catalog(tmp_path / "artifacts").resolve(f"{MODEL_ID}/config.json") is None
    assert time.monotonic() - started < 1

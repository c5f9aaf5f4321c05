"""Loopback throughput of the model host vs `python -m http.server`, serving one random file.

Each run: N threads each GET the whole file at once (keep-alive off, 1 MiB reads), every body
checked by sha256 after the clock stops. Clients and server share the machine's cores, so the
numbers are what one box pushes through loopback, not a network figure.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.browser import free_port, live_server
from bench.plan import REPO, BenchError, Plan
from bench.stats import summarize
from exporter.artifacts import ArtifactStore
from runtime.progress import bar

MODEL_ID = "bench"
REST = "onnx/model.onnx"
CLIENTS = (1, 16)


def make_artifacts(root: Path, size: int) -> tuple[Path, str]:
    """One model with one random file; returns (its file on disk, its sha256)."""
    with ArtifactStore(root).stage(MODEL_ID) as staging:
        path = staging.path(REST)
        with path.open("wb") as f:
            for _ in range(0, size, 1 << 20):
                f.write(os.urandom(min(1 << 20, size - f.tell())))
        entry = staging.commit(
            variants={"fp32": {"dtype": "fp32", "files": {"model": REST}}},
            task="text-generation",
            family="llama",
            source="random bytes (benchmark)",
            trained=False,
            defaults={"wasm": "fp32"},
            llm={
                "context_length": 1,
                "num_layers": 1,
                "num_kv_heads": 1,
                "head_dim": 1,
                "vocab_size": 1,
                "eos_token_ids": [0],
            },
        )
    return root / MODEL_ID / REST, entry.files[0].sha256


def fetch(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers={"Connection": "close"})
    response = conn.getresponse()
    if response.status != 200:
        raise BenchError(f"GET {path} answered {response.status}", fix="check the server log")
    chunks = []
    while chunk := response.read(1 << 20):
        chunks.append(chunk)
    conn.close()
    return b"".join(chunks)


def one_run(port: int, path: str, clients: int, size: int, sha: str) -> float:
    """MB/s of `clients` concurrent whole-file downloads."""
    with ThreadPoolExecutor(max_workers=clients) as pool:
        started = time.perf_counter()
        bodies = list(pool.map(lambda _: fetch(port, path), range(clients)))
        seconds = time.perf_counter() - started
    for body in bodies:
        if len(body) != size or hashlib.sha256(body).hexdigest() != sha:
            raise AssertionError("corrupt download")
    return clients * size / 1e6 / seconds


def measure(port: int, path: str, runs: int, size: int, sha: str, progress) -> dict[str, dict]:
    fetch(port, path)  # warm the page cache and the server
    out = {}
    for n in CLIENTS:
        out[f"{n}_clients"] = summarize([one_run(port, path, n, size, sha) for _ in range(runs)])
        progress.update(1)
    return out


@contextmanager
def http_server(directory: Path, path: str) -> Iterator[int]:
    """`python -m http.server` on a free port, once it answers HEAD path; yields the port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(directory), str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("HEAD", path)
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise BenchError("python -m http.server did not start", fix="check that ports are free") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run(plan: Plan) -> dict:
    size = plan.server_mb << 20
    with (
        tempfile.TemporaryDirectory(prefix="lumen-bench-server-") as tmp,
        bar(2 * len(CLIENTS), "[bench] server", unit="config") as progress,
    ):
        root = Path(tmp) / "artifacts"
        real, sha = make_artifacts(root, size)
        with live_server(root) as (_, port):
            ours = measure(port, f"/models/{MODEL_ID}/{REST}", plan.runs, size, sha, progress)
        with http_server(real.parent, f"/{real.name}") as port:
            baseline = measure(port, f"/{real.name}", plan.runs, size, sha, progress)
    table = [
        {
            "section": "server",
            "model": "-",
            "file": f"{size / 1e6:.0f} MB file",
            "metric": f"{n} client(s)",
            "unit": "MB/s",
            "higher_is_better": True,
            "values": {"lumen_serve": ours[f"{n}_clients"], "python_http_server": baseline[f"{n}_clients"]},
            "missing": {},
            "ratios": {"ours_vs_http_server": ours[f"{n}_clients"]["median"] / baseline[f"{n}_clients"]["median"]},
        }
        for n in CLIENTS
    ]
    return {"file_bytes": size, "rows": table}

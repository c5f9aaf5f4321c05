"""Loopback throughput of the model host vs `python -m http.server`, serving one ~64 MB file.

    python bench/server_throughput.py [--mb 64] [--runs 5] [--clients 1,16]

Each run: N threads each GET the whole file at once (keep-alive off, 1 MiB reads), every body
checked by sha256 after the clock stops. Prints JSON: MB/s medians (and all runs) per server
and client count. Clients and server share the machine's cores, so numbers are what one box can
push through loopback, not a network figure.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.artifacts import ArtifactStore  # noqa: E402

MODEL_ID = "bench"
REST = "onnx/model.onnx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_artifacts(root: Path, size: int) -> tuple[Path, str]:
    """One model with one random file; returns (its file on disk, its sha256)."""
    with ArtifactStore(root).stage(MODEL_ID) as staging:
        path = staging.path(REST)
        with path.open("wb") as f:
            for _ in range(0, size, 1 << 20):
                f.write(os.urandom(min(1 << 20, size - f.tell())))
        entry = staging.commit(variants={"fp32": {"dtype": "fp32", "files": {"model": REST}}},
                               task="text-generation", family="llama", source="random bytes (benchmark)",
                               trained=False, defaults={"wasm": "fp32"},
                               llm={"context_length": 1, "num_layers": 1, "num_kv_heads": 1, "head_dim": 1,
                                    "vocab_size": 1, "eos_token_ids": [0]})
    return root / MODEL_ID / REST, entry.files[0].sha256


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("HEAD", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def fetch(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers={"Connection": "close"})
    response = conn.getresponse()
    assert response.status == 200, response.status
    chunks = []
    while chunk := response.read(1 << 20):
        chunks.append(chunk)
    conn.close()
    return b"".join(chunks)


def one_run(port: int, path: str, clients: int, size: int, sha: str) -> float:
    with ThreadPoolExecutor(max_workers=clients) as pool:
        started = time.perf_counter()
        bodies = list(pool.map(lambda _: fetch(port, path), range(clients)))
        seconds = time.perf_counter() - started
    for body in bodies:
        assert len(body) == size and hashlib.sha256(body).hexdigest() == sha, "corrupt download"
    return clients * size / 1e6 / seconds


def measure(name: str, args: list[str], port: int, path: str, clients: list[int], runs: int, size: int,
            sha: str) -> dict[str, dict]:
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, path, proc)
        fetch(port, path)  # warm the page cache and the server
        out = {}
        for n in clients:
            rates = [one_run(port, path, n, size, sha) for _ in range(runs)]
            out[str(n)] = {"median_mb_s": round(statistics.median(rates), 1),
                           "runs_mb_s": [round(r, 1) for r in rates]}
            print(f"  {name}: {n} client(s) {out[str(n)]['median_mb_s']} MB/s", file=sys.stderr)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64, help="file size in MiB (default 64)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts (default 1,16)")
    args = parser.parse_args()
    size = args.mb << 20
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "artifacts"
        real, sha = make_artifacts(root, size)
        ours_port, base_port = free_port(), free_port()
        ours_args = [sys.executable, "-m", "server", "--artifacts", str(root), "--port", str(ours_port),
                     "--log-level", "warning"]
        base_args = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(real.parent),
                     str(base_port)]
        ours = measure("lumen-serve", ours_args, ours_port, f"/models/{MODEL_ID}/{REST}", clients, args.runs, size,
                       sha)
        baseline = measure("http.server", base_args, base_port, f"/{real.name}", clients, args.runs, size, sha)
    print(json.dumps({"file_mb": round(size / 1e6, 1), "runs": args.runs, "cpu_count": os.cpu_count(),
                      "lumen_serve": ours, "http_server": baseline}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

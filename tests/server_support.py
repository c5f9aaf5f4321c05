"""Helpers for the server tests: a small artifact folder of random files, a web bundle, a live server.

The artifact folder is written by the real ArtifactStore (no model export): the server only cares
about files, sizes and hashes.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from exporter.artifacts import ArtifactStore
from harness.live_server import free_port as free_port
from harness.live_server import live_server as live_server
from harness.live_server import server_log as server_log
from harness.live_server import spawn_server as spawn_server
from server.static import CONTENT_SECURITY_POLICY

REPO = Path(__file__).resolve().parent.parent
MODEL_ID = "test-org/tiny-llm"
SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"
# rest path -> size in bytes; odd sizes so no range lines up with a chunk boundary by luck.
FILE_SIZES = {
    "onnx/model_q4.onnx": 3 * 1024 * 1024 + 17,
    "onnx/model_q4.onnx_data": 1024 * 1024 + 3,
    "mlc/q4f32_1/resolve/main/params_shard_0.bin": 512 * 1024 + 1,
    "config.json": 211,
    "tokenizer.json": 4099,
    "onnx/empty.bin": 0,
}
LLM_INFO = {
    "context_length": 64,
    "num_layers": 2,
    "num_kv_heads": 1,
    "head_dim": 8,
    "vocab_size": 32,
    "eos_token_ids": [2],
}


def commit_model(root: Path, model_id: str, files: dict[str, bytes]) -> None:
    """Publishes `files` (rest path -> bytes) as one text-generation model through the real store."""
    with ArtifactStore(root).stage(model_id) as staging:
        for rest, data in files.items():
            staging.path(rest).write_bytes(data)
        onnx = next(rest for rest in files if rest.endswith(".onnx"))
        staging.commit(
            variants={"q4": {"dtype": "q4", "files": {"model": onnx}}},
            task="text-generation",
            family="llama",
            source="random bytes (server test)",
            trained=False,
            defaults={"wasm": "q4", "webgpu": "q4"},
            llm=LLM_INFO,
        )


def random_files(seed: int, sizes: dict[str, int] = FILE_SIZES) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {rest: rng.randbytes(size) for rest, size in sizes.items()}


def build_artifacts(root: Path, seed: int = 0) -> dict[str, bytes]:
    """An artifact folder with one model; returns logical path -> content."""
    files = random_files(seed)
    commit_model(root, MODEL_ID, files)
    return {f"{MODEL_ID}/{rest}": data for rest, data in files.items()}


SECURITY = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}


def assert_security_headers(headers) -> None:
    for name, value in SECURITY.items():
        assert headers.get(name) == value, f"{name}: {headers.get(name)!r}"
    csp = headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp and "frame-ancestors 'none'" in csp


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """multipart/byteranges -> [(part content-type, content-range, bytes)]."""
    boundary = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", content_type).group(1).encode()
    assert body.endswith(b"--" + boundary + b"--")
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, payload = chunk.partition(b"\r\n\r\n")
        assert payload.endswith(b"\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").strip().split("\r\n"))
        parts.append((fields["Content-Type"], fields["Content-Range"], payload[:-2]))
    return parts


WEB_FILES = {
    "index.html": b"<!doctype html><title>Lumen</title><script type=module src=/assets/index-3f2a9c.js></script>",
    "sw.js": b"self.addEventListener('fetch', () => {});",
    "assets/index-3f2a9c.js": b"export const answer = 42;",
    "assets/style-9b1d.css": b"body { margin: 0 }",
    "assets/ort-wasm-simd-threaded-ab12.mjs": b"export default 1;",
    "assets/ort-wasm-simd-threaded-ab12.wasm": b"\0asm\1\0\0\0",
    "logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "icon.png": b"\x89PNG\r\n\x1a\n",
    "app.webmanifest": b'{"name": "Lumen"}',
    "docs/readme.txt": b"no index in this folder",
}


def build_web_dist(dist: Path, outside: Path) -> None:
    """A built-bundle lookalike, plus symlinks that point out of it (to `outside`, holding SECRET)."""
    for rest, data in WEB_FILES.items():
        (dist / rest).parent.mkdir(parents=True, exist_ok=True)
        (dist / rest).write_bytes(data)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_bytes(SECRET)
    os.symlink(outside / "secret.txt", dist / "leak.txt")
    os.symlink(outside, dist / "leakdir")
    os.symlink(dist / "loop-b", dist / "loop-a")
    os.symlink(dist / "loop-a", dist / "loop-b")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def request(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Reply:
    """Sends `path` exactly as given (no client-side normalization of ../ or %-escapes)."""
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def download_by_ranges(host: str, port: int, path: str, size: int, chunk: int, seed: int) -> bytes:
    """Fetches a file as `chunk`-byte ranges in shuffled order over one keep-alive connection."""
    if size == 0:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        reply = request(conn, path)
        conn.close()
        assert reply.status == 200, reply.status
        return reply.body
    starts = list(range(0, size, chunk))
    random.Random(seed).shuffle(starts)
    buffer = bytearray(size)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        for start in starts:
            end = min(start + chunk, size) - 1
            reply = request(conn, path, {"Range": f"bytes={start}-{end}"})
            assert reply.status == 206, (path, start, reply.status)
            assert reply.headers["content-range"] == f"bytes {start}-{end}/{size}"
            assert len(reply.body) == end - start + 1
            buffer[start : end + 1] = reply.body
    finally:
        conn.close()
    return bytes(buffer)


def _world_readable_copy(folders: dict[str, Path], base: Path, models: list[str] | None) -> dict[str, Path]:
    """Copies of `folders` (symlinks kept) under a fresh 0755 folder: an unprivileged uid can read
    them. With `models`, the artifact folder keeps only those models' files (the manifest as is)."""
    import shutil

    base.mkdir(mode=0o755)
    copies = {}
    for name, folder in folders.items():
        copies[name] = base / name
        if name == "artifacts" and models is not None:
            copies[name].mkdir()
            shutil.copy2(folder / "manifest.json", copies[name] / "manifest.json")
            for model in models:
                (copies[name] / model).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / model, copies[name] / model, follow_symlinks=False)
                shutil.copytree(folder / ".rev" / model, copies[name] / ".rev" / model, symlinks=True)
        else:
            shutil.copytree(folder, copies[name], symlinks=True)
    for path in base.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return copies


@contextmanager
def live_nginx(
    artifacts: Path, web: Path, timeout: float = 20, models: list[str] | None = None, outside: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Debian's nginx on a free loopback port with `python -m server --print-nginx-config`,
    as an unprivileged process (as root: uid/gid 65534 through setpriv, on world-readable copies,
    of only `models` when given; `outside` is copied as a sibling "outside" of the copies, so
    relative symlinks out of the roots still point at readable files there)."""
    import shutil
    import tempfile

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise AssertionError("nginx is not installed: apt-get install -y nginx-light (scripts/install.sh does)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lumen-nginx-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        prefix: list[str] = []
        if os.geteuid() == 0:
            folders = {"artifacts": artifacts, "web": web, **({"outside": outside} if outside else {})}
            copies = _world_readable_copy(folders, base / "site", models)
            artifacts, web = copies["artifacts"], copies["web"]
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        runtime = base / "run"
        runtime.mkdir(mode=0o777)
        runtime.chmod(0o777)
        config = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "--print-nginx-config",
                "--artifacts",
                str(artifacts),
                "--web",
                str(web),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--nginx-runtime-dir",
                str(runtime),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (runtime / "nginx.conf").write_text(config)
        (runtime / "nginx.conf").chmod(0o644)
        args = [*prefix, nginx, "-p", str(runtime), "-c", str(runtime / "nginx.conf"), "-g", "daemon off;"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log = (runtime / "error.log").read_text() if (runtime / "error.log").exists() else ""
                    raise AssertionError(f"nginx exited ({proc.returncode}): {proc.stdout.read().decode()}\n{log}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

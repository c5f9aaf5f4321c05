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
from dataclasses import dataclass
from pathlib import Path

from exporter.artifacts import ArtifactStore
from harness.live_server import free_port as free_port
from harness.live_server import live_server as live_server
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

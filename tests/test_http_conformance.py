"""One HTTP suite, two hosts: the Python server and Debian's nginx running the generated config
(`python -m server --print-nginx-config`). Raw sockets, so malformed requests reach the host as
written. Where RFC 9110 lets a host choose (ignore a bad Range or refuse it; 400 or 431 for a huge
head) both choices are accepted; everything else is asserted identically.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_support import (
    MODEL_ID,
    SECRET,
    assert_security_headers,
    build_artifacts,
    build_web_dist,
    live_nginx,
    live_server,
    parse_multipart,
)
from test_server_http import MODEL_TRAVERSALS, WEB_TRAVERSALS

BIG = f"{MODEL_ID}/onnx/model_q4.onnx"
DOTFILES = [".env", ".git/config", "assets/.hidden.js", ".well-hidden/index.html"]


class RawReply:
    def __init__(self, raw: bytes, head_only: bool) -> None:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = body
        if not head_only and "content-length" in self.headers:
            assert len(body) == int(self.headers["content-length"]), (len(body), self.headers)


def raw(host: str, port: int, data: bytes, timeout: float = 10) -> RawReply:
    """Sends `data` on a fresh connection (the request should say Connection: close) and reads to EOF."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    return RawReply(b"".join(chunks), head_only=data.startswith(b"HEAD "))


def get(site: dict, path: str, method: str = "GET", **headers: str) -> RawReply:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{site['port']}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return raw(site["host"], site["port"], ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("conformance")
    files = build_artifacts(base / "artifacts")
    build_web_dist(base / "dist", base / "outside")
    (base / "dist" / "guide").mkdir()
    (base / "dist" / "guide" / "index.html").write_bytes(b"<!doctype html><title>guide</title>")
    for rest in DOTFILES:
        (base / "dist" / rest).parent.mkdir(parents=True, exist_ok=True)
        (base / "dist" / rest).write_bytes(SECRET)
    # Relative links out of the roots: they stay valid in nginx's world-readable copies too.
    (base / "dist" / "rel-leak.txt").symlink_to("../outside/secret.txt")
    (base / "dist" / "assets" / "rel-leakdir").symlink_to("../../outside")
    revision = (base / "artifacts" / MODEL_ID).resolve()
    (revision / "leak.bin").symlink_to(os.path.relpath(base / "outside" / "secret.txt", revision))
    return {"root": base / "artifacts", "dist": base / "dist", "files": files, "outside": base / "outside"}


@pytest.fixture(scope="module", params=["python", "nginx"])
def site(request: pytest.FixtureRequest, folders: dict) -> Iterator[dict]:
    if request.param == "python":
        host_of = live_server(folders["root"], folders["dist"])
    else:
        host_of = live_nginx(folders["root"], folders["dist"], outside=folders["outside"])
    with host_of as (host, port):
        yield {**folders, "host": host, "port": port, "kind": request.param}


# ---------------------------------------------------------------- what both hosts serve alike


@pytest.mark.parametrize(
    "path, mime, cache",
    [
        ("/", "text/html", "no-cache"),
        ("/assets/index-3f2a9c.js", "text/javascript", "immutable"),
        ("/assets/ort-wasm-simd-threaded-ab12.mjs", "text/javascript", "immutable"),
        ("/assets/ort-wasm-simd-threaded-ab12.wasm", "application/wasm", "immutable"),
        ("/api/models", "application/json", "no-cache"),
        (f"/models/{BIG}", "application/octet-stream", "immutable"),
        (f"/models/{MODEL_ID}/config.json", "application/json", "immutable"),
    ],
)
def test_files_headers_and_head(site: dict, path: str, mime: str, cache: str) -> None:
    reply = get(site, path)
    assert reply.status == 200
    assert reply.headers["content-type"].split(";")[0] == mime
    assert cache in reply.headers["cache-control"]
    assert_security_headers(reply.headers)
    head = get(site, path, method="HEAD")  # RFC 9110 9.1: HEAD wherever GET, same headers, no body
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == reply.headers["content-length"]
    assert head.headers.get("etag") == reply.headers.get("etag")


def test_model_file_bytes_ranges_and_multipart(site: dict) -> None:
    data = site["files"][BIG]
    assert get(site, f"/models/{BIG}").body == data
    part = get(site, f"/models/{BIG}", Range="bytes=100-199")
    assert part.status == 206 and part.body == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    suffix = get(site, f"/models/{BIG}", Range="bytes=-10")
    assert suffix.status == 206 and suffix.body == data[-10:]
    multi = get(site, f"/models/{BIG}", Range="bytes=0-9,1000-1009")
    assert multi.status == 206
    parts = parse_multipart(multi.headers["content-type"], multi.body.strip(b"\r\n"))
    assert [p[2] for p in parts] == [data[0:10], data[1000:1010]]
    unsatisfiable = get(site, f"/models/{BIG}", Range=f"bytes={len(data)}-")
    assert unsatisfiable.status == 416 and unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    assert_security_headers(unsatisfiable.headers)


# spec -> the only bytes a lenient host may send for it (nginx reads "bytes= 7 - 9" as 7-9).
OUTSIDE_THE_GRAMMAR = {"bytes=+5-10": None, "bytes=1_0-2_0": None, "bytes= 7 - 9": (7, 10), "bytes=0x10-20": None}


@pytest.mark.parametrize("spec", [*OUTSIDE_THE_GRAMMAR, "bytes=5-3"])
def test_ranges_outside_the_rfc_grammar_never_give_unnamed_bytes(site: dict, spec: str) -> None:
    data = site["files"][BIG]
    reply = get(site, f"/models/{BIG}", Range=spec)
    # RFC 9110 14.2: a server may ignore a Range it cannot parse (200) or refuse it; never guess.
    if site["kind"] == "python":
        assert reply.status == 400  # strict: the grammar is 1*DIGIT, no signs, underscores or spaces
    elif reply.status == 206:
        start, end = OUTSIDE_THE_GRAMMAR.get(spec) or (0, 0)
        assert end > start and reply.body == data[start:end], (spec, reply.headers.get("content-range"))
    else:
        assert reply.status in (200, 400, 416)
    if reply.status == 200:
        assert reply.body == data


def test_conditional_requests(site: dict) -> None:
    path = f"/models/{BIG}"
    etag = get(site, path).headers["etag"]
    assert not etag.startswith("W/")
    assert get(site, path, If_None_Match=etag).status == 304
    assert get(site, path, If_Match=etag).status == 200
    assert get(site, path, If_Match='"another-version"').status == 412
    assert get(site, path, If_Match="*").status == 200
    assert get(site, path, If_Unmodified_Since="Sun, 06 Nov 1994 08:49:37 GMT").status == 412
    assert get(site, path, If_Unmodified_Since="Fri, 01 Jan 2100 00:00:00 GMT").status == 200
    assert_security_headers(get(site, path, If_Match='"x"').headers)


def test_directory_redirect_is_relative(site: dict) -> None:
    for host in ("evil.example", f"127.0.0.1:{site['port']}"):
        request = f"GET /guide HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        reply = raw(site["host"], site["port"], request)
        assert reply.status in (301, 302, 307, 308)
        assert reply.headers["location"] == "/guide/"
        assert "evil" not in reply.headers["location"]


@pytest.mark.parametrize("path", [f"/{rest}" for rest in DOTFILES] + ["/models/.rev/", f"/models/{MODEL_ID}/../.rev"])
def test_dotfiles_are_not_served(site: dict, path: str) -> None:
    reply = get(site, path)
    assert reply.status == 404
    assert SECRET not in reply.body


ESCAPES = [
    *MODEL_TRAVERSALS,
    *WEB_TRAVERSALS,
    "/rel-leak.txt",
    "/assets/rel-leakdir/secret.txt",
    f"/models/{MODEL_ID}/leak.bin",
    "/../../etc/passwd",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_nothing_outside_the_roots(site: dict, path: str) -> None:
    reply = get(site, path)
    assert SECRET not in reply.body and b"root:" not in reply.body
    if site["kind"] == "nginx" and reply.status == 200:
        # nginx normalizes `..` inside /models/ and serves what it lands on, if that is in the root
        # (the Python server answers only exact manifest paths): never anything from outside it.
        inside = [p for p in Path(site["root"]).rglob("*") if p.is_file() and not p.is_symlink()]
        assert any(reply.body == p.read_bytes() for p in inside), path
    else:
        assert reply.status in (400, 403, 404), (path, reply.status)


def test_unknown_method_is_501_and_a_known_unsupported_one_405(site: dict) -> None:
    assert get(site, "/", method="FOO").status == 501
    reply = get(site, "/", method="DELETE")
    assert reply.status == 405
    assert_security_headers(reply.headers)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",  # two Hosts
        b"GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",  # not a host name
        b"GARBAGE\r\n\r\n",  # not HTTP at all
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",  # space in a field name
    ],
)
def test_malformed_requests_get_a_400_with_the_security_headers(site: dict, request_bytes: bytes) -> None:
    reply = raw(site["host"], site["port"], request_bytes)
    assert reply.status == 400
    assert_security_headers(reply.headers)


def test_an_oversized_head_is_refused_fast_with_the_security_headers(site: dict) -> None:
    request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection((site["host"], site["port"]), timeout=10) as sock:
        # Refused before we finished sending is fine: the reply is already in our buffer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        reply = RawReply(sock.recv(1 << 16), head_only=True)
    assert time.monotonic() - started < 5
    assert reply.status in (400, 431)
    assert_security_headers(reply.headers)


def test_api_models_is_the_manifest(site: dict) -> None:
    import json

    models = json.loads(get(site, "/api/models").body)
    assert [m["id"] for m in models["models"]] == [MODEL_ID]


def test_healthz_head(site: dict) -> None:
    if site["kind"] == "nginx":
        pytest.skip("nginx serves files only: /healthz is the Python server's")
    assert get(site, "/healthz", method="HEAD").status == 200
    assert get(site, "/healthz", method="HEAD").body == b""

"""The model host over HTTP: Range, conditional requests, HEAD, headers, MIME, caching, traversal,
manifest reload, and concurrent range downloads on a real uvicorn.

What the server returns for the edge cases (asserted below):
  bytes=N-M within the file          206, exactly that slice (M clamped to the last byte)
  bytes=-N (suffix), N > size        206, the whole file
  bytes=N- with N >= size, bytes=-0  416, Content-Range: bytes */size
  malformed bytes ranges             400 (bytes=abc, bytes=5-3, bytes=)
  a unit other than bytes            200, the whole file (RFC 9110: ignored)
  several ranges                     206 multipart/byteranges (overlaps merged; one range left -> plain 206)
  more than 100 ranges               200, the whole file
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from contract.manifest import load_manifest, revision_dir
from server.app import create_app
from server.static import IMMUTABLE, RangeFileResponse
from server_support import (
    MODEL_ID,
    REPO,
    SECRET,
    SECURITY,
    WEB_FILES,
    assert_security_headers,
    build_artifacts,
    build_web_dist,
    commit_model,
    download_by_ranges,
    live_server,
    parse_multipart,
    random_files,
    request,
    sha256,
)

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2 instead of httpx; same client API
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

BIG = f"{MODEL_ID}/onnx/model_q4.onnx"
EMPTY = f"{MODEL_ID}/onnx/empty.bin"
CHUNK = RangeFileResponse.chunk_size


def mime(headers) -> str:
    return headers["content-type"].split(";")[0].strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("server")
    files = build_artifacts(base / "artifacts")
    build_web_dist(base / "dist", base / "outside")
    return {"root": base / "artifacts", "dist": base / "dist", "files": files}


@pytest.fixture(scope="module")
def client(site: dict) -> TestClient:
    return TestClient(create_app(site["root"], site["dist"]))


# ---------------------------------------------------------------- plain GET, HEAD, API


def test_every_listed_file_is_served_whole_with_its_sha256_etag(client: TestClient, site: dict) -> None:
    for logical, data in site["files"].items():
        r = client.get(f"/models/{logical}")
        assert r.status_code == 200, logical
        assert r.content == data
        assert r.headers["etag"] == f'"{sha256(data)}"'
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["accept-ranges"] == "bytes"
        assert r.headers["cache-control"] == IMMUTABLE
        assert_security_headers(r.headers)


def test_head_has_the_get_headers_and_no_body(client: TestClient, site: dict) -> None:
    get, head = client.get(f"/models/{BIG}"), client.head(f"/models/{BIG}")
    assert head.status_code == 200 and head.content == b""
    for name in ("etag", "content-length", "content-type", "cache-control", "accept-ranges", *SECURITY):
        assert head.headers[name] == get.headers[name]
    ranged = client.head(f"/models/{BIG}", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == b""
    assert ranged.headers["content-length"] == "10"
    assert ranged.headers["content-range"] == f"bytes 10-19/{len(site['files'][BIG])}"


def test_api_models_is_the_manifest_uncached(client: TestClient, site: dict) -> None:
    r = client.get("/api/models")
    assert r.status_code == 200 and mime(r.headers) == "application/json"
    assert r.headers["cache-control"] == "no-cache"
    assert r.json() == json.loads((site["root"] / "manifest.json").read_text())
    assert_security_headers(r.headers)


def test_healthz_counts_models(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "models": 1}
    assert_security_headers(r.headers)


# ---------------------------------------------------------------- Range


@pytest.mark.parametrize(
    "spec, expect",
    [
        ("bytes=0-0", lambda n: (0, 0)),  # first byte
        ("bytes={last}-{last}", lambda n: (n - 1, n - 1)),  # last byte
        ("bytes=-1", lambda n: (n - 1, n - 1)),  # last byte as a suffix
        ("bytes=0-{last}", lambda n: (0, n - 1)),  # whole file as a range
        ("bytes=0-", lambda n: (0, n - 1)),  # open range
        ("bytes=1000-", lambda n: (1000, n - 1)),
        ("bytes=-{bigger}", lambda n: (0, n - 1)),  # suffix larger than the file
        ("bytes=100-{bigger}", lambda n: (100, n - 1)),  # end past the file: clamped
        ("bytes={chunk_end}-{chunk}", lambda n: (CHUNK - 1, CHUNK)),  # across the server's read-chunk boundary
        ("bytes= 7-9 ", lambda n: (7, 9)),  # OWS around the range-set tolerated
    ],
)
def test_single_ranges(client: TestClient, site: dict, spec: str, expect) -> None:
    data = site["files"][BIG]
    n = len(data)
    start, end = expect(n)
    r = client.get(
        f"/models/{BIG}", headers={"Range": spec.format(last=n - 1, bigger=n + 1000, chunk=CHUNK, chunk_end=CHUNK - 1)}
    )
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{n}"
    assert r.headers["content-length"] == str(end - start + 1)
    assert r.content == data[start : end + 1]
    assert r.headers["etag"] == f'"{sha256(data)}"' and r.headers["cache-control"] == IMMUTABLE
    assert_security_headers(r.headers)


@pytest.mark.parametrize("spec", ["bytes={size}-", "bytes={size}-{bigger}", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(client: TestClient, site: dict, spec: str) -> None:
    n = len(site["files"][BIG])
    r = client.get(f"/models/{BIG}", headers={"Range": spec.format(size=n, bigger=n + 5)})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{n}"
    assert_security_headers(r.headers)


def test_empty_file(client: TestClient) -> None:
    r = client.get(f"/models/{EMPTY}")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    r = client.get(f"/models/{EMPTY}", headers={"Range": "bytes=0-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */0"


# RFC 9110 14.1.2: positions are 1*DIGIT with no space inside a range (int() would take these).
STRICT_GRAMMAR = ["bytes=+5-10", "bytes=1_0-2_0", "bytes= 7 - 9", "bytes=1e2-200", "bytes=-+5", "bytes=0x10-20"]


@pytest.mark.parametrize("spec", ["bytes=abc", "bytes=5-3", "bytes=", "bytes=-", "bytes=x-y,z", *STRICT_GRAMMAR])
def test_malformed_byte_ranges_are_400(client: TestClient, spec: str) -> None:
    r = client.get(f"/models/{BIG}", headers={"Range": spec})
    assert r.status_code == 400
    assert_security_headers(r.headers)


@pytest.mark.parametrize("spec", ["items=0-5", "0-5", "chars=-1"])
def test_unknown_range_units_are_ignored(client: TestClient, site: dict, spec: str) -> None:
    r = client.get(f"/models/{BIG}", headers={"Range": spec})
    assert r.status_code == 200 and r.content == site["files"][BIG]


def test_multiple_ranges_are_multipart(client: TestClient, site: dict) -> None:
    data = site["files"][BIG]
    n = len(data)
    r = client.get(f"/models/{BIG}", headers={"Range": "bytes=0-9,-5,100-199"})
    assert r.status_code == 206
    assert r.headers["content-length"] == str(len(r.content))
    parts = parse_multipart(r.headers["content-type"], r.content)
    # Sorted by start: 0-9, 100-199, then the suffix.
    assert [(p[1], p[2]) for p in parts] == [
        (f"bytes 0-9/{n}", data[0:10]),
        (f"bytes 100-199/{n}", data[100:200]),
        (f"bytes {n - 5}-{n - 1}/{n}", data[n - 5 :]),
    ]
    assert {p[0] for p in parts} == {"application/octet-stream"}
    assert_security_headers(r.headers)


def test_overlapping_ranges_merge_into_one(client: TestClient, site: dict) -> None:
    data = site["files"][BIG]
    r = client.get(f"/models/{BIG}", headers={"Range": "bytes=0-9,5-14"})
    assert r.status_code == 206 and r.content == data[:15]
    assert r.headers["content-range"] == f"bytes 0-14/{len(data)}"


def test_too_many_ranges_give_the_whole_file(client: TestClient, site: dict) -> None:
    spec = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(101))
    r = client.get(f"/models/{BIG}", headers={"Range": spec})
    assert r.status_code == 200 and r.content == site["files"][BIG]


# ---------------------------------------------------------------- conditional requests


@pytest.mark.parametrize("header", ['"{sha}"', 'W/"{sha}"', '"other", "{sha}"', "*"])
def test_if_none_match_gives_304(client: TestClient, site: dict, header: str) -> None:
    data = site["files"][BIG]
    r = client.get(
        f"/models/{BIG}", headers={"If-None-Match": header.format(sha=sha256(data)), "Range": "bytes=0-9"}
    )  # a match wins over Range
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == f'"{sha256(data)}"'
    assert r.headers["cache-control"] == IMMUTABLE
    assert_security_headers(r.headers)
    assert client.head(f"/models/{BIG}", headers={"If-None-Match": header.format(sha=sha256(data))}).status_code == 304


def test_if_none_match_with_another_etag_gives_the_file(client: TestClient, site: dict) -> None:
    r = client.get(f"/models/{BIG}", headers={"If-None-Match": f'"{"0" * 64}"'})
    assert r.status_code == 200 and r.content == site["files"][BIG]


def test_if_range(client: TestClient, site: dict) -> None:
    data = site["files"][BIG]
    etag = f'"{sha256(data)}"'
    matching = client.get(f"/models/{BIG}", headers={"Range": "bytes=5-9", "If-Range": etag})
    assert matching.status_code == 206 and matching.content == data[5:10]
    stale = client.get(f"/models/{BIG}", headers={"Range": "bytes=5-9", "If-Range": f'"{"0" * 64}"'})
    assert stale.status_code == 200 and stale.content == data
    weak = client.get(f"/models/{BIG}", headers={"Range": "bytes=5-9", "If-Range": f"W/{etag}"})
    assert weak.status_code == 200 and weak.content == data  # If-Range needs a strong match
    by_date = client.get(
        f"/models/{BIG}", headers={"Range": "bytes=5-9", "If-Range": matching.headers["last-modified"]}
    )
    assert by_date.status_code == 206 and by_date.content == data[5:10]


# ---------------------------------------------------------------- MIME, caching, headers everywhere


@pytest.mark.parametrize(
    "rest, expected",
    [
        ("onnx/model_q4.onnx", "application/octet-stream"),
        ("onnx/model_q4.onnx_data", "application/octet-stream"),
        ("mlc/q4f32_1/resolve/main/params_shard_0.bin", "application/octet-stream"),
        ("config.json", "application/json"),
    ],
)
def test_model_file_mime_types(client: TestClient, rest: str, expected: str) -> None:
    assert mime(client.head(f"/models/{MODEL_ID}/{rest}").headers) == expected


@pytest.mark.parametrize(
    "path, expected_mime, expected_cache",
    [
        ("/", "text/html", "no-cache"),
        ("/index.html", "text/html", "no-cache"),
        ("/sw.js", "text/javascript", "no-cache"),
        ("/assets/index-3f2a9c.js", "text/javascript", IMMUTABLE),
        ("/assets/ort-wasm-simd-threaded-ab12.mjs", "text/javascript", IMMUTABLE),
        ("/assets/ort-wasm-simd-threaded-ab12.wasm", "application/wasm", IMMUTABLE),
        ("/assets/style-9b1d.css", "text/css", IMMUTABLE),
        ("/logo.svg", "image/svg+xml", "no-cache"),
        ("/icon.png", "image/png", "no-cache"),
        ("/app.webmanifest", "application/manifest+json", "no-cache"),
    ],
)
def test_web_bundle_files(client: TestClient, path: str, expected_mime: str, expected_cache: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    rest = "index.html" if path == "/" else path[1:]
    assert r.content == WEB_FILES[rest]
    assert mime(r.headers) == expected_mime
    assert r.headers["cache-control"] == expected_cache
    assert_security_headers(r.headers)
    again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == expected_cache
    assert_security_headers(again.headers)


def test_security_headers_on_errors(client: TestClient, site: dict) -> None:
    responses = {
        404: client.get("/models/nope/x.onnx"),
        405: client.post(f"/models/{BIG}"),
        400: client.get(f"/models/{BIG}", headers={"Range": "bytes=abc"}),
        416: client.get(f"/models/{BIG}", headers={"Range": "bytes=-0"}),
    }
    for status, r in responses.items():
        assert r.status_code == status
        assert_security_headers(r.headers)
    assert "GET" in responses[405].headers["allow"]


def test_security_headers_on_a_500(site: dict) -> None:
    app = create_app(site["root"], site["dist"])

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("deliberate")

    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the web bundle mounted at /
    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    assert_security_headers(r.headers)


def test_no_directory_listing(client: TestClient) -> None:
    for path in ("/docs/", "/docs", "/assets/", "/assets"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 404, path
        assert b"readme.txt" not in r.content and b"index-3f2a9c" not in r.content


# ---------------------------------------------------------------- missing bundle, startup, imports


def test_missing_bundle_page(site: dict, tmp_path: Path) -> None:
    for web in (None, tmp_path / "dist"):
        c = TestClient(create_app(site["root"], web))
        r = c.get("/")
        assert r.status_code == 503 and mime(r.headers) == "text/html"
        assert b"npm --prefix web ci &amp;&amp; npm --prefix web run build" in r.content
        assert_security_headers(r.headers)
        assert c.get("/assets/index.js").status_code == 404
        assert c.get(f"/models/{BIG}").status_code == 200  # models are served without a bundle


def test_bundle_built_while_running_is_served(site: dict, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    c = TestClient(create_app(site["root"], dist))
    assert c.get("/").status_code == 503
    dist.mkdir()
    (dist / "index.html").write_bytes(b"<!doctype html>built")
    r = c.get("/")
    assert r.status_code == 200 and r.content == b"<!doctype html>built"


def run_server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_cli_rejects_an_invalid_manifest_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"schema_version": 1, "models": [{"id": "../x"}]}')
    proc = run_server_cli("--artifacts", str(tmp_path), "--port", "1")
    assert proc.returncode == 2
    assert "is not a valid manifest" in proc.stderr and "fix:" in proc.stderr


def test_cli_rejects_a_missing_folder_with_exit_2(tmp_path: Path) -> None:
    proc = run_server_cli("--artifacts", str(tmp_path / "absent"), "--port", "1")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "fix:" in proc.stderr


def test_server_imports_no_torch_transformers_or_exporter() -> None:
    code = (
        "import sys, server.app, server.cli, server.catalog, server.static; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers', 'exporter', "
        "'onnxruntime', 'optimum'}); print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- manifest reload


def test_manifest_reload_while_serving(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    first = build_artifacts(root, seed=1)
    c = TestClient(create_app(root, None))
    assert c.get("/healthz").json()["models"] == 1
    old = c.get(f"/models/{BIG}")
    assert old.content == first[BIG]

    # A second model lands while the server runs.
    extra = random_files(2, {"onnx/model.onnx": 1000, "config.json": 10})
    commit_model(root, "second", extra)
    assert c.get("/healthz").json() == {"status": "ok", "models": 2}
    assert c.get("/models/second/onnx/model.onnx").content == extra["onnx/model.onnx"]
    assert [m["id"] for m in c.get("/api/models").json()["models"]] == [MODEL_ID, "second"]

    # The first model is re-exported with new content: same URL, new bytes, new ETag.
    replaced = random_files(3)
    commit_model(root, MODEL_ID, replaced)
    new = c.get(f"/models/{BIG}")
    assert new.content == replaced["onnx/model_q4.onnx"]
    assert new.headers["etag"] == f'"{sha256(replaced["onnx/model_q4.onnx"])}"' != old.headers["etag"]
    assert c.get(f"/models/{BIG}", headers={"If-None-Match": old.headers["etag"]}).status_code == 200

    # A broken manifest is ignored (logged); the last good one keeps being served.
    (root / "manifest.json").write_text("{not json")
    assert c.get("/healthz").json()["models"] == 2
    assert c.get(f"/models/{BIG}").content == replaced["onnx/model_q4.onnx"]


def test_file_changed_on_disk_or_symlinked_out_is_not_served(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    files = build_artifacts(root)
    entry = load_manifest(root).get(MODEL_ID)
    rev = revision_dir(root, entry)
    secret = tmp_path / "secret.json"
    secret.write_bytes(SECRET.ljust(len(files[f"{MODEL_ID}/config.json"]), b" "))  # same size as listed
    (rev / "config.json").unlink()
    os.symlink(secret, rev / "config.json")
    (rev / "tokenizer.json").write_bytes(b"truncated")
    c = TestClient(create_app(root, None))
    for rest in ("config.json", "tokenizer.json"):
        r = c.get(f"/models/{MODEL_ID}/{rest}")
        assert r.status_code == 404 and SECRET not in r.content, rest
    assert c.get(f"/models/{BIG}").status_code == 200


# ---------------------------------------------------------------- traversal on a real server


MODEL_TRAVERSALS = [
    "/models/../manifest.json",
    "/models/%2e%2e/manifest.json",
    "/models/%2e%2e%2fmanifest.json",
    "/models/%252e%252e%252fmanifest.json",
    "/models/..%5cmanifest.json",
    "/models/..\\manifest.json",
    f"/models/{MODEL_ID}/../../manifest.json",
    f"/models/{MODEL_ID}/..%2f..%2fmanifest.json",
    f"/models/{MODEL_ID}/../tiny-llm/config.json",  # even a traversal that lands on a listed file
    "/models//etc/passwd",
    "/models/%2fetc%2fpasswd",
    "/models/etc/passwd",
    f"/models/{MODEL_ID}/config.json%00",
    f"/models/{MODEL_ID}/config.json%00.png",
    "/models/%00",
    "/models/.rev",
    "/models/manifest.json",
    "/models/.lock",
]
WEB_TRAVERSALS = [
    "/../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2e%2e%2foutside%2fsecret.txt",
    "/%252e%252e%252foutside%252fsecret.txt",
    "/..%5coutside%5csecret.txt",
    "/..\\outside\\secret.txt",
    "/assets/../../outside/secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/index.html%00",
    "/index.html%00.png",
    "/leak.txt",
    "/leakdir/secret.txt",
    "/loop-a",
]


@pytest.fixture(scope="module")
def server(site: dict):
    with live_server(site["root"], site["dist"]) as address:
        yield address


@pytest.mark.parametrize("path", MODEL_TRAVERSALS + WEB_TRAVERSALS)
def test_traversal_is_404(server, path: str) -> None:
    conn = http.client.HTTPConnection(*server, timeout=10)
    reply = request(conn, path)
    conn.close()
    assert reply.status == 404, (path, reply.status, reply.body[:200])
    assert SECRET not in reply.body and b"root:" not in reply.body and b"schema_version" not in reply.body
    assert_security_headers(reply.headers)


def test_a_real_server_serves_a_listed_file(server, site: dict) -> None:
    conn = http.client.HTTPConnection(*server, timeout=10)
    reply = request(conn, f"/models/{MODEL_ID}/config.json")
    conn.close()
    assert reply.status == 200 and reply.body == site["files"][f"{MODEL_ID}/config.json"]
    assert "server" not in reply.headers  # no version banner


def test_concurrent_range_downloads_match_sha256(server, site: dict) -> None:
    files = site["files"]
    jobs = [(path, data, worker) for worker in range(8) for path, data in files.items()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(
                lambda job: (
                    job[1],
                    download_by_ranges(*server, f"/models/{job[0]}", len(job[1]), 96 * 1024 + 7, seed=job[2]),
                ),
                jobs,
            )
        )
    for expected, got in results:
        assert sha256(got) == sha256(expected)

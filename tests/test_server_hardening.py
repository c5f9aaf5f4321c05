"""Issue #5: the model host under generated and concurrent input.

- schemathesis drives every OpenAPI operation (paths and the documented Range / If-Range /
  If-None-Match headers): no 5xx, responses conform to the documented statuses and schemas.
- hypothesis generates Range / If-None-Match / If-Range headers: never a 5xx, every 206 body is
  exactly the slice its Content-Range names, and well-formed single ranges give exactly the bytes
  an independent reading of RFC 9110 says.
- a bounded load test: 50 concurrent loopback clients fetch every artifact file by ranges on a
  real uvicorn; every byte is checked by sha256; throughput is printed.
All loops are bounded; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app
from server.static import RangeFileResponse
from server_support import (
    MODEL_ID,
    SECRET,
    assert_security_headers,
    build_artifacts,
    build_web_dist,
    download_by_ranges,
    live_server,
    parse_multipart,
    sha256,
)

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2 instead of httpx; same client API
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

SMALL = f"{MODEL_ID}/tokenizer.json"  # 4099 bytes: ranges hit both ends often
LARGE = f"{MODEL_ID}/onnx/model_q4.onnx_data"  # 1 MiB + 3: crosses the server's read chunk
CHUNK = RangeFileResponse.chunk_size
FUZZ_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("hardening")
    files = build_artifacts(base / "artifacts")
    build_web_dist(base / "dist", base / "outside")
    return {"root": base / "artifacts", "dist": base / "dist", "files": files}


@pytest.fixture(scope="module")
def client(site: dict) -> TestClient:
    return TestClient(create_app(site["root"], site["dist"]))


# ---------------------------------------------------------------- schemathesis against the OpenAPI


@pytest.fixture(scope="module")
def api_schema(site: dict):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(site["root"], site["dist"]))
    schema.config.generation.update(max_examples=60)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_openapi_operations_never_fail(case) -> None:
    response = case.call_and_validate(
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    )
    assert response.status_code < 500
    assert_security_headers({name: values[-1] for name, values in response.headers.items()})  # name -> [values]
    assert SECRET.decode() not in response.text


# ---------------------------------------------------------------- generated Range / conditional headers


def numbers(size: int) -> st.SearchStrategy[int]:
    """Byte positions: mostly inside the file, often at its edges or a read-chunk boundary."""
    edges = [0, 1, size - 1, size, size + 1, CHUNK - 1, CHUNK, 2**63]
    inside = st.integers(0, size - 1)
    return st.one_of(inside, inside, st.sampled_from(edges))


@st.composite
def range_headers(draw, size: int) -> str:
    """Near-valid Range values (mixed units, forms, spacing, counts) and arbitrary latin-1 noise."""
    if draw(st.integers(0, 3)) == 0:  # a quarter of the time: noise
        noise = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
        return draw(st.text(noise, max_size=40))
    unit = draw(st.sampled_from(["bytes", "bytes", "bytes", "bytes", "BYTES", " bytes ", "items", ""]))
    n = numbers(size)
    in_order = st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)).map(sorted)
    spec = st.one_of(
        in_order.map("{0[0]}-{0[1]}".format),
        in_order.map("{0[0]}-{0[1]}".format),
        st.builds("{}-{}".format, n, n),
        st.builds("{}-".format, n),
        st.builds("-{}".format, n),
        st.sampled_from(["", "-", "--1", "1--2", "a-b", "0x10-", "+1-2", " 3 - 4 ", "1_0-2_0"]),
    )
    specs = draw(st.lists(spec, min_size=1, max_size=draw(st.sampled_from([4, 4, 4, 120]))))
    return f"{unit}={','.join(specs)}"


def etag_headers(etag: str, last_modified: str) -> st.SearchStrategy[str | None]:
    # Mostly absent, so that most requests reach the Range logic.
    known = st.sampled_from(
        [etag, f"W/{etag}", f'"{"0" * 64}"', "*", last_modified, f'"x", {etag}', etag[:-1], "W/", ""]
    )
    return st.one_of(
        st.none(),
        st.none(),
        st.none(),
        st.none(),
        known,
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    )


def check_body(status: int, headers, body: bytes, data: bytes) -> None:
    """Whatever the status, the body must be exactly what the headers promise."""
    size = len(data)
    assert status in (200, 206, 304, 400, 416), status
    if status == 200:
        assert body == data
    elif status == 304:
        assert body == b""
    elif status == 416:
        assert headers["content-range"] == f"bytes */{size}"
    elif status == 206:
        assert headers["content-length"] == str(len(body))
        if headers["content-type"].startswith("multipart/byteranges"):
            parts = parse_multipart(headers["content-type"], body)
            assert len(parts) >= 2
            for _, content_range, payload in parts:
                start, end, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range).groups())
                assert total == size and 0 <= start <= end < size
                assert payload == data[start : end + 1]
        else:
            start, end, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers["content-range"]).groups())
            assert total == size and 0 <= start <= end < size
            assert body == data[start : end + 1]


@FUZZ_SETTINGS
@given(data=st.data())
def test_generated_range_and_conditional_headers(client: TestClient, site: dict, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([SMALL, LARGE]))
    content = site["files"][path]
    etag, last_modified = f'"{sha256(content)}"', client.head(f"/models/{path}").headers["last-modified"]
    headers = {"Range": data.draw(range_headers(len(content)))}
    for name in ("If-None-Match", "If-Range"):
        value = data.draw(etag_headers(etag, last_modified))
        if value is not None:
            headers[name] = value
    method = data.draw(st.sampled_from(["GET", "HEAD"]))
    r = client.request(method, f"/models/{path}", headers={k: v.encode("latin-1") for k, v in headers.items()})
    assert r.status_code < 500
    multipart = r.headers.get("content-type", "").startswith("multipart/")
    event(f"{method} {r.status_code}{' multipart' if multipart else ''}")  # --hypothesis-show-statistics
    assert_security_headers(r.headers)
    if method == "GET":
        check_body(r.status_code, r.headers, r.content, content)
    else:
        assert r.content == b"" and r.status_code in (200, 206, 304, 400, 416)


def expected_single_range(spec: tuple[int | None, int | None], size: int) -> tuple[int, int] | None:
    """RFC 9110 14.1.2, read independently: (first, last) byte positions, or None for 416."""
    first, last = spec
    if first is None:  # suffix: the last `last` bytes
        return None if last == 0 or size == 0 else (max(size - last, 0), size - 1)
    if first >= size:
        return None
    return first, size - 1 if last is None else min(last, size - 1)


@FUZZ_SETTINGS
@given(data=st.data())
def test_well_formed_single_ranges_give_exactly_the_rfc_bytes(
    client: TestClient, site: dict, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from([SMALL, LARGE]))
    content = site["files"][path]
    size = len(content)
    n = numbers(size)
    first = data.draw(st.one_of(st.none(), n))
    last = data.draw(n if first is None else st.one_of(st.none(), st.integers(first, first + size)))
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    if_range = data.draw(st.sampled_from([None, "match", "stale"]))
    headers = {"Range": header}
    if if_range:
        headers["If-Range"] = f'"{sha256(content)}"' if if_range == "match" else f'"{"f" * 64}"'
    r = client.get(f"/models/{path}", headers=headers)
    expected = expected_single_range((first, last), size)
    event(f"{r.status_code}")
    if if_range == "stale":
        assert r.status_code == 200 and r.content == content
    elif expected is None:
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    else:
        start, end = expected
        assert r.status_code == 206, (header, r.status_code)
        assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert r.content == content[start : end + 1]


# ---------------------------------------------------------------- bounded load test on loopback


CLIENTS = 50
RANGE_BYTES = 256 * 1024 + 13


def test_load_50_clients_download_every_file_by_ranges(site: dict) -> None:
    files = site["files"]
    total = CLIENTS * sum(len(d) for d in files.values())
    with live_server(site["root"], site["dist"]) as (host, port):

        def client_run(index: int) -> dict[str, str]:
            return {
                path: sha256(download_by_ranges(host, port, f"/models/{path}", len(data), RANGE_BYTES, seed=index))
                for path, data in files.items()
            }

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(client_run, range(CLIENTS)))
        seconds = time.perf_counter() - started
    expected = {path: sha256(data) for path, data in files.items()}
    assert all(result == expected for result in results)
    print(
        f"\nload: {CLIENTS} clients x {len(files)} files by {RANGE_BYTES}-byte ranges: {total / 1e6:.0f} MB "
        f"in {seconds:.2f} s = {total / 1e6 / seconds:.0f} MB/s (loopback, sha256 verified)"
    )
    assert seconds < 60, "bounded: the load test must stay short"

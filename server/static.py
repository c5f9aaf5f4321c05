"""HTTP details of serving files: security headers, MIME types, caching, conditional and Range requests.

Range handling is Starlette's FileResponse (206, multipart/byteranges, 416 with `bytes */size`,
If-Range); this module adds only what it lacks: the manifest's sha256 as a strong ETag,
If-None-Match -> 304, If-Match / If-Unmodified-Since -> 412, RFC 9110's strict Range grammar
(digits only: Python's int() would take `+5` and `1_0`), the rule that a Range in an unknown
unit is ignored (Starlette answers 400), and serving from a file opened before the response
starts (a re-export may delete the path meanwhile; the open file stays readable).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, MalformedRangeHeader, PlainTextResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

# onnxruntime-web compiles WASM ('wasm-unsafe-eval') and may start workers from blob: URLs;
# images are shown from object URLs; nothing ever loads from another origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "worker-src 'self' blob:",
        "connect-src 'self' blob: data:",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# COOP + COEP make the page cross-origin isolated: SharedArrayBuffer, so multi-threaded WASM.
SECURITY_HEADERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

OCTET = "application/octet-stream"
# Explicit, not the host's /etc/mime.types: a browser refuses `import` of an .mjs served otherwise.
MIME_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".onnx": OCTET,
    ".onnx_data": OCTET,
    ".bin": OCTET,
    ".gguf": OCTET,
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".txt": "text/plain",
    ".jinja": "text/plain",
    ".woff2": "font/woff2",
}

BUILD_HINT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lumen: web app not built</title></head>
<body><h1>The web app is not built yet</h1>
<p>The model host is running (<a href="/api/models">/api/models</a>), but there is no web bundle at
<code>{dist}</code>. Build it, then reload this page:</p>
<pre>npm --prefix web ci &amp;&amp; npm --prefix web run build</pre>
<p>or start the server with <code>--web</code> pointing at a built bundle.</p></body></html>
"""


def media_type(name: str) -> str:
    return MIME_TYPES.get(os.path.splitext(name)[1].lower(), OCTET)


class SecurityHeaders:
    """ASGI wrapper adding SECURITY_HEADERS to every HTTP response, errors and 304 included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_inside(root: Path, candidate: Path) -> bool:
    """The root jail: True when `candidate`, symlinks resolved, lies under the already-resolved `root`."""
    return Path(os.path.realpath(candidate)).is_relative_to(root)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; * matches any."""
    if if_none_match.strip() == "*":
        return True
    return etag.removeprefix("W/") in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))


def etag_matches_strongly(if_match: str, etag: str) -> bool:
    """If-Match uses strong comparison (RFC 9110 13.1.1): a weak tag never matches; * matches any."""
    if if_match.strip() == "*":
        return True
    return not etag.startswith("W/") and etag in (tag.strip() for tag in if_match.split(","))


def precondition_failed(request_headers: Headers, etag: str, last_modified: str) -> bool:
    """RFC 9110 13.2.2 steps 1-2: If-Match, else If-Unmodified-Since (an invalid date is ignored)."""
    if_match = request_headers.get("if-match")
    if if_match is not None:
        return not etag_matches_strongly(if_match, etag)
    if_unmodified_since = request_headers.get("if-unmodified-since")
    if if_unmodified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_unmodified_since)
    except (TypeError, ValueError):
        return False
    return since.tzinfo is not None and parsedate_to_datetime(last_modified) > since


# RFC 9110 14.1.2: range-set = 1#( int-range / suffix-range ), positions are 1*DIGIT; OWS around
# commas. The digit cap keeps int() fast (a 32 KB head could otherwise hold one 30,000-digit number).
_RANGE_SPEC = r"(?:[0-9]{1,1000}-[0-9]{0,1000}|-[0-9]{1,1000})"
_RANGE_SET = re.compile(rf"[ \t]*{_RANGE_SPEC}(?:[ \t]*,[ \t]*{_RANGE_SPEC})*[ \t]*")


class RangeFileResponse(FileResponse):
    # Starlette reads 64 KiB per thread hop; 1 MiB served loopback about 2.5x faster, but every
    # slow reader then holds about 2 MB (the chunk plus the transport's copy). 256 KiB keeps most
    # of the speed (bench/server_throughput.py) at a quarter of the memory per stalled download.
    chunk_size = 256 * 1024

    def __init__(self, *args: object, handle: BinaryIO | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.handle = handle

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        unit, _, range_set = http_range.partition("=")
        # RFC 9110 14.2: a Range in a unit the server does not know MUST be ignored (full 200).
        if unit.strip().lower() != "bytes":
            return []
        if not _RANGE_SET.fullmatch(range_set):
            raise MalformedRangeHeader("Range header: not bytes=first-last, first- or -suffix (digits only)")
        return super()._parse_range_header(http_range, file_size)

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        if self.handle is None:
            async with super()._open_file() as file:
                yield file
            return
        file = anyio.wrap_file(self.handle)
        try:
            yield file
        finally:
            with anyio.CancelScope(shield=True):
                await file.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # HEAD, 416 and errors never open the file: the handle still must be closed
            if self.handle is not None:
                self.handle.close()


def file_response(
    path: Path,
    st: os.stat_result,
    request_headers: Headers,
    *,
    cache_control: str,
    etag: str | None = None,
    status_code: int = 200,
    handle: BinaryIO | None = None,
) -> Response:
    """A file (Range-aware), 412 when If-Match / If-Unmodified-Since fails, or 304 when
    If-None-Match names its ETag (default ETag: Starlette's mtime+size tag). `handle`, when given,
    is the already open file to serve; it is closed when the response ends."""
    headers = {"cache-control": cache_control}
    if etag is not None:
        headers["etag"] = etag
    response = RangeFileResponse(
        path, status_code=status_code, headers=headers, media_type=media_type(path.name), stat_result=st, handle=handle
    )
    if status_code != 200:
        return response
    if precondition_failed(request_headers, response.headers["etag"], response.headers["last-modified"]):
        response.handle = None
        if handle is not None:
            handle.close()
        return PlainTextResponse(
            "Precondition failed: the file is not the one If-Match / If-Unmodified-Since names\n",
            status_code=412,
            headers={"etag": response.headers["etag"], "cache-control": NO_CACHE},
        )
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, response.headers["etag"]):
        if handle is not None:
            handle.close()
        return NotModifiedResponse(response.headers)
    return response


def web_cache_control(path: str) -> str:
    """Hashed build output under assets/ never changes; everything else is revalidated (ETag)."""
    return IMMUTABLE if path.startswith("assets/") else NO_CACHE


class WebBundle(StaticFiles):
    """The built web app (index.html at /). Starlette's StaticFiles does the root jail: paths are
    normalized, symlinks resolved (follow_symlink=False), and anything outside the folder is 404;
    a folder without index.html is 404, never a listing."""

    def __init__(self, dist: Path | None) -> None:
        self.dist = dist
        super().__init__(directory=dist, html=True, check_dir=False)

    async def check_config(self) -> None:
        """The bundle may be built while the server runs: checked per request instead."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        try:
            return super().lookup_path(path)
        except OSError:  # symlink loops, permission errors: not servable, so not found
            return "", None

    async def get_response(self, path: str, scope: Scope) -> Response:
        # Only the bundle's own files: never .git, .env, editor or OS droppings (any dot segment).
        if any(part.startswith(".") and part != "." for part in path.split("/")):
            raise HTTPException(status_code=404)
        if self.dist is None or not (self.dist / "index.html").is_file():
            if scope["method"] in ("GET", "HEAD") and path in (".", "index.html"):
                return HTMLResponse(
                    BUILD_HINT.format(dist=self.dist or "(none given)"),
                    status_code=503,
                    headers={"cache-control": NO_CACHE},
                )
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        assert self.dist is not None  # get_response returned early otherwise
        relative = Path(os.path.realpath(full_path)).relative_to(os.path.realpath(self.dist)).as_posix()
        return file_response(
            Path(full_path),
            stat_result,
            Headers(scope=scope),
            status_code=status_code,
            cache_control=web_cache_control(relative),
        )

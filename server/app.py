"""Routes of the model host: /api/models, /healthz, /models/<id>/<rest>, and the web app at /.

No torch, transformers or exporter imports: the artifact folder is read through contract/ only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.types import ASGIApp

from contract.manifest import Manifest
from server.catalog import Catalog
from server.http_rules import ProtocolRules
from server.static import IMMUTABLE, NO_CACHE, SecurityHeaders, WebBundle, file_response


class Health(BaseModel):
    status: Literal["ok"]
    models: int


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, outside Starlette's ServerErrorMiddleware: even a 500 carries COOP/COEP/CSP.
        return SecurityHeaders(ProtocolRules(super().build_middleware_stack()))


# Documented so OpenAPI clients (and the schemathesis tests) know the conditional/Range headers.
_FILE_HEADERS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in (
        ("Range", "bytes=N-M, bytes=N-, bytes=-N, or several, comma-separated"),
        ("If-Range", "the ETag (or Last-Modified) the client holds; a mismatch gives the whole file"),
        ("If-None-Match", "ETags the client holds; a match gives 304"),
        ("If-Match", "ETags the client expects; no strong match gives 412"),
        ("If-Unmodified-Since", "an HTTP date; a file modified after it gives 412"),
    )
]
_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole file; Content-Type by extension"},
    206: {"description": "Partial content (Range)"},
    304: {"description": "Not modified (If-None-Match names the file's sha256 ETag)"},
    400: {"description": "Malformed bytes Range"},
    404: {"description": "Not a file listed in the manifest"},
    412: {"description": "If-Match / If-Unmodified-Since names another version"},
    416: {"description": "Range not satisfiable; Content-Range: bytes */<size>"},
}


def create_app(artifacts: Path, web_dist: Path | None) -> FastAPI:
    """Raises ArtifactFolderError when the folder is missing or its manifest is invalid."""
    catalog = Catalog(Path(artifacts))
    # No /docs or /redoc: they load scripts from a CDN, which the CSP (rightly) blocks.
    # redirect_slashes off: /api/models/ is a 404, not a redirect built from the client's Host.
    app = _App(title="Lumen model host", version="0.1.0", docs_url=None, redoc_url=None, redirect_slashes=False)

    async def models() -> Response:
        return JSONResponse(catalog.manifest.model_dump(mode="json"), headers={"cache-control": NO_CACHE})

    async def healthz() -> Response:
        health = Health(status="ok", models=len(catalog.manifest.models))
        return JSONResponse(health.model_dump(), headers={"cache-control": "no-store"})

    for path, endpoint, model in (("/api/models", models, Manifest), ("/healthz", healthz, Health)):
        app.add_api_route(path, endpoint, methods=["GET"], response_model=model)
        # RFC 9110 9.1: HEAD wherever GET (the server drops the body); one OpenAPI operation is enough.
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    async def model_file(path: str, request: Request) -> Response:
        served = catalog.resolve(path)
        if served is None:
            raise HTTPException(status_code=404)
        return file_response(
            served.path,
            served.stat,
            request.headers,
            cache_control=IMMUTABLE,
            etag=f'"{served.entry.sha256}"',
            handle=served.handle,
        )

    for method in ("GET", "HEAD"):  # one route each: OpenAPI needs a distinct operation id per method
        app.add_api_route(
            "/models/{path:path}",
            model_file,
            methods=[method],
            responses=_FILE_RESPONSES,
            response_class=Response,
            operation_id=f"{method.lower()}_model_file",
            openapi_extra={"parameters": _FILE_HEADERS},
            summary="A file listed in the manifest, at /models/<id>/<rest>",
        )

    app.mount("/", WebBundle(Path(web_dist) if web_dist is not None else None), name="web")
    return app

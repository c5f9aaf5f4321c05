"""`python -m server --artifacts artifacts/ [--web web/dist] [--host 127.0.0.1 --port 8000]` (lumen-serve)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="artifact folder written by the exporter (default: artifacts)",
    )
    parser.add_argument(
        "--web", type=Path, default=Path("web/dist"), help="built web bundle served at / (default: web/dist)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import uvicorn  # after argument parsing: --help and usage errors stay instant

    from server.app import create_app
    from server.catalog import ArtifactFolderError

    try:
        app = create_app(args.artifacts, args.web)
    except ArtifactFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False)
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl+C, then re-raises the signal: stopping is not an error.
        pass
    print("server stopped", file=sys.stderr)
    return 0

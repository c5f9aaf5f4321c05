"""`python -m server --artifacts artifacts/ [--web web/dist] [--host 127.0.0.1 --port 8000]` (lumen-serve)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from server.limits import HEADER_BYTES, Limits


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
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=Limits.request_timeout,
        help="seconds a connection may take to send a complete request head (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=Limits.max_connections,
        help="open connections at most; lowered to fit the fd limit (default: %(default)s)",
    )
    parser.add_argument(
        "--print-nginx-config",
        action="store_true",
        help="print an nginx server block serving the same folders with the same headers, and exit",
    )
    parser.add_argument(
        "--nginx-runtime-dir",
        type=Path,
        help="with --print-nginx-config: print a whole nginx.conf that keeps pid, logs and temp files here",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limits = Limits(request_timeout=args.request_timeout, max_connections=args.max_connections)
    if args.print_nginx_config:
        from server.nginx import server_block, standalone_config

        listen = f"{args.host}:{args.port}"
        if args.nginx_runtime_dir is None:
            print(server_block(args.artifacts, args.web, listen, limits), end="")
        else:
            print(standalone_config(args.artifacts, args.web, listen, limits, args.nginx_runtime_dir), end="")
        return 0

    import uvicorn  # after argument parsing: --help and usage errors stay instant

    from server.app import create_app
    from server.catalog import ArtifactFolderError
    from server.limits import protocol_class

    try:
        app = create_app(args.artifacts, args.web)
    except ArtifactFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # uvicorn shuts down gracefully on Ctrl+C, then re-raises the signal: stopping is not an error.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            server_header=False,
            # h11, not httptools: it refuses an oversized head as soon as its buffer passes the limit.
            http=protocol_class(limits),
            h11_max_incomplete_event_size=HEADER_BYTES,
            timeout_keep_alive=5,
        )
    print("server stopped", file=sys.stderr)
    return 0

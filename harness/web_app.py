"""web/dist, rebuilt when any web source is newer than the last build."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web"
# Inputs of the web build: a newer one than dist/index.html means dist is stale.
_WEB_SOURCES = ("src", "index.html", "vite.config.ts", "package.json", "package-lock.json", "tsconfig.json")


def _newest_source_mtime() -> float:
    paths = [p for name in _WEB_SOURCES for p in ([WEB / name] if (WEB / name).is_file() else (WEB / name).rglob("*"))]
    return max(p.stat().st_mtime for p in paths if p.is_file())


def build_web() -> Path:
    """web/dist, rebuilt (npm run build, about 3 s) when any web source is newer than it."""
    index = WEB / "dist" / "index.html"
    if index.exists() and index.stat().st_mtime >= _newest_source_mtime():
        return WEB / "dist"
    if not (WEB / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, capture_output=True, timeout=600)
    proc = subprocess.run(["npm", "run", "build"], cwd=WEB, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"npm run build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return WEB / "dist"

"""The Transformers.js peer page: bench/peer/page plus the library's self-contained bundle and the
exact onnxruntime-web build it bundles, copied into one folder the model host serves as its web
root (same origin as /models/, with COOP/COEP). The npm package lives in bench/peer/ only, so the
app bundle never includes it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bench.plan import REPO, BenchError

PEER = REPO / "bench" / "peer"
MODULES = PEER / "node_modules"
LIBRARY = MODULES / "@huggingface" / "transformers"
ORT_PAIR = ("ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")


def _install() -> None:
    """npm ci from bench/peer/package-lock.json; --ignore-scripts: a Node-only dependency downloads at install."""
    try:
        proc = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=PEER,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"npm ci in {PEER} failed: {err}", fix="install Node.js 20+ and npm") from err
    if proc.returncode != 0:
        raise BenchError(
            f"npm ci in {PEER} failed:\n{proc.stderr[-2000:]}", fix="cd bench/peer && npm ci --ignore-scripts"
        )


def library_version() -> str:
    return json.loads((LIBRARY / "package.json").read_text())["version"]


def assemble(dest: Path) -> Path:
    """Writes the peer's web root into dest; returns dest."""
    if not (LIBRARY / "dist" / "transformers.min.js").is_file():
        _install()
    ort_dist = MODULES / "onnxruntime-web" / "dist"
    bundled = json.loads((LIBRARY / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    installed = json.loads((MODULES / "onnxruntime-web" / "package.json").read_text())["version"]
    if bundled != installed:  # the runtime pair must match the JS bundled in transformers.min.js
        raise BenchError(
            f"Transformers.js bundles onnxruntime-web {bundled}, but {installed} is installed",
            fix="cd bench/peer && rm -rf node_modules && npm ci --ignore-scripts",
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("index.html", "peer.js"):
        shutil.copy2(PEER / "page" / name, dest / name)
    shutil.copy2(LIBRARY / "dist" / "transformers.min.js", dest / "transformers.min.js")
    (dest / "ort").mkdir(exist_ok=True)
    for name in ORT_PAIR:
        shutil.copy2(ort_dist / name, dest / "ort" / name)
    return dest

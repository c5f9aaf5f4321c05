"""The llama.cpp-in-WASM peer: wllama (npm @wllama/wllama, a benchmark-only dependency in
bench/peer/ beside Transformers.js) on the source GGUF of the default LLM, served from the peer
page's web root under /wllama/ (same origin, COOP/COEP from the model host, so its multi-threaded
build runs). Only SmolLM2 has a GGUF source; other models get a row that says so."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.transformers_js import MODULES

LIBRARY = MODULES / "@wllama" / "wllama"
PAGE = LIBRARY.parent.parent.parent / "page"


def library_version() -> str:
    return json.loads((LIBRARY / "package.json").read_text())["version"]


def gguf_for(llm_source: str) -> Path | str:
    """The GGUF the default LLM is exported from, or a string saying why there is none."""
    if llm_source != "smollm2":
        return "no GGUF source for this model (only SmolLM2 ships one)"
    from exporter.sources import packaged_smollm2_gguf

    return packaged_smollm2_gguf()


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link where the file system allows (the GGUF is ~100 MB), else a copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def assemble(dest: Path, gguf: Path | None) -> None:
    """Adds wllama.{html,js}, /wllama/{index.js,wllama.wasm} and (when there is one) /wllama/model.gguf to
    the peer web root `dest` (bench/transformers_js.py installs the npm packages first)."""
    folder = dest / "wllama"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("wllama.html", "wllama.js"):
        shutil.copy2(PAGE / name, dest / name)
    shutil.copy2(LIBRARY / "esm" / "index.js", folder / "index.js")
    shutil.copy2(LIBRARY / "esm" / "wasm" / "wllama.wasm", folder / "wllama.wasm")
    if gguf is not None:
        _link_or_copy(gguf, folder / "model.gguf")

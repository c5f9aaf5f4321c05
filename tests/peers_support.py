"""The peers' own entry points on our exports: Transformers.js in Node (tests/peers/transformers_js.mjs).

The library is the benchmark's copy (bench/peer, Transformers.js 4.3.2, installed by
scripts/install.sh with --ignore-scripts: onnxruntime-node's CPU binaries ship in the package).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
LIBRARY = REPO / "bench" / "peer" / "node_modules" / "@huggingface" / "transformers"
ENTRY = LIBRARY / "dist" / "transformers.node.mjs"
HARNESS = REPO / "tests" / "peers" / "transformers_js.mjs"


def transformers_js(job: dict, timeout: float = 900) -> list[dict]:
    """Runs one job (see the harness's header) in Node; returns one result per job["dtypes"] entry."""
    assert ENTRY.is_file(), f"{ENTRY} is missing: run scripts/install.sh (npm --prefix bench/peer ci --ignore-scripts)"
    proc = subprocess.run(
        ["node", str(HARNESS), str(ENTRY)],
        check=False,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"Transformers.js failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def library_suffixes() -> dict[str, str]:
    """DEFAULT_DTYPE_SUFFIX_MAPPING as the installed library's source writes it: dtype name -> file suffix."""
    source = (LIBRARY / "src" / "utils" / "dtypes.js").read_text(encoding="utf-8")
    block = re.search(r"DEFAULT_DTYPE_SUFFIX_MAPPING = Object\.freeze\(\{(.*?)\}\)", source, re.DOTALL)
    assert block, "Transformers.js's dtypes.js changed shape: re-check peer_config.SUFFIX by hand"
    return dict(re.findall(r"\[DATA_TYPES\.(\w+)\]:\s*'([^']*)'", block.group(1)))


def write_images(images: list[Image.Image], folder: Path, size: tuple[int, int] | None) -> list[Path]:
    """PNG files (lossless: both sides decode the same pixels), resized to `size` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i}.png"
        (image.resize(size, Image.Resampling.BICUBIC) if size else image).convert("RGB").save(path)
        paths.append(path)
    return paths

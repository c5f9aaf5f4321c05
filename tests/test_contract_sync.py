"""contract/ is the one source of the manifest's shape: the committed JSON Schema and web/'s generated
TypeScript types must be exactly what the pydantic models generate now."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from contract.manifest import json_schema

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "contract" / "manifest.schema.json"
TYPES = REPO / "web" / "src" / "engine" / "manifest.gen.ts"
REGENERATE = "python -m contract.manifest > contract/manifest.schema.json && npm --prefix web run gen:manifest"


def test_committed_schema_is_what_the_contract_generates() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == json.dumps(json_schema(), indent=2) + "\n", f"stale: run {REGENERATE}"


def test_committed_typescript_types_are_what_the_schema_generates(tmp_path: Path) -> None:
    if not (REPO / "web" / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: run `npm --prefix web ci` (scripts/install.sh does)")
    schema = tmp_path / "manifest.schema.json"
    schema.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    out = tmp_path / "manifest.gen.ts"
    proc = subprocess.run(
        ["npx", "json2ts", "--input", str(schema), "--output", str(out), "--additionalProperties", "false"],
        cwd=REPO / "web",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert TYPES.read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), f"stale: run {REGENERATE}"

"""The web engine's typed unit tests (web/src/**/*.test.ts, Node's test runner through tsx), run by
`npm --prefix web test`: pure logic such as sampling, request checks, streaming and path selection.
Logic whose numbers must equal Python's stays in the browser test files (Node against reference/)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web"


def test_web_unit_tests_pass() -> None:
    if not (WEB / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: run `npm --prefix web ci` (scripts/install.sh does)")
    proc = subprocess.run(["npm", "test"], cwd=WEB, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, f"no web unit test ran:\n{output[-3000:]}"

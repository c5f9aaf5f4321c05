"""Lint, format and types over the whole Python tree, as configured in pyproject.toml: ruff's rules,
`ruff format`'s layout, and mypy on every package (tests excepted, see [tool.mypy]). Each fails on
any finding, so `make test` keeps the tree as clean as the checkers can tell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_checker_finds_nothing(command: tuple[str, ...]) -> None:
    proc = _run(*command)
    assert proc.returncode == 0, f"{' '.join(command)}:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"

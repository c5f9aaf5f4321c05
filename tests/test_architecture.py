"""The layout's rules, checked over the source: dependencies point one way, and no module edits sys.path.

contract/   <- everything (the manifest schema, the base error)
runtime/    <- exporter/, reference/, bench/ (torch-free code that runs exported files)
exporter/, server/, web/: never import each other, only contract/ (and runtime/ for the exporter)
reference/  <- bench/, tests (the Python references the browser is compared with)
harness/    <- bench/, tests (live server, web build, Chromium flags, test images)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("contract", "runtime", "exporter", "server", "reference", "bench", "harness", "scripts")
ALLOWED = {
    "contract": set(),
    "runtime": {"contract"},
    "exporter": {"contract", "runtime"},
    "server": {"contract"},
    "reference": {"contract", "runtime"},
    "harness": set(),
    # The benchmarks drive every part: they export models and build artifact folders to measure.
    "bench": {"contract", "runtime", "exporter", "reference", "harness"},
    "scripts": {"contract"},
}
PROJECT = set(PACKAGES) | {"tests", "conftest", "browser_support", "server_support"}


def _python_files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & PROJECT


@pytest.mark.parametrize("package", PACKAGES)
def test_python_parts_import_only_what_they_may(package: str) -> None:
    assert _python_files(package), f"{package}/ has no Python files"
    bad = {
        f"{path.relative_to(REPO)} imports {other}"
        for path in _python_files(package)
        for other in _imported_packages(path) - ALLOWED[package] - {package}
    }
    assert not bad, sorted(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom exporter.errors import ExportError\nimport server.app as app\nfrom . import x\n")
    assert _imported_packages(sample) == {"exporter", "server"}


_TS_IMPORT = re.compile(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")


def test_web_imports_nothing_outside_web_but_contract() -> None:
    src = REPO / "web" / "src"
    bad = []
    for path in sorted(src.rglob("*.ts")):
        for spec in _TS_IMPORT.findall(path.read_text(encoding="utf-8")):
            target = (path.parent / spec.split("?")[0]).resolve()
            if not (target.is_relative_to(src) or target.is_relative_to(REPO / "contract")):
                bad.append(f"{path.relative_to(REPO)} imports {spec}")
    assert not bad, bad


def _edits_sys_path(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        for node in ast.walk(tree)
    )


def test_no_sys_path_manipulation_outside_conftest() -> None:
    files = [p for package in (*PACKAGES, "tests") for p in _python_files(package)]
    offenders = [str(p.relative_to(REPO)) for p in files if p != REPO / "tests" / "conftest.py" and _edits_sys_path(p)]
    assert not offenders, offenders

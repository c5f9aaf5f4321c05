"""The layout's rules, checked over the source: dependencies point one way, and no module edits sys.path.

contract/   <- everything (the manifest schema, the base error)
runtime/    <- exporter/, reference/, bench/ (torch-free code that runs exported files)
exporter/, server/, web/: never import each other, only contract/ (and runtime/ for the exporter)
reference/  <- bench/, tests (the Python references the browser is compared with)
harness/    <- bench/, scripts/ (screenshots), tests (live server, web build, Chromium flags, test images)
"""

from __future__ import annotations

import ast
import re
import subprocess
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
    # The screenshot script serves and drives the app as the browser tests do.
    "scripts": {"contract", "harness"},
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


_CITED_FILE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w.-]+\.(?:md|sh))\b")
_MD_LINK = re.compile(r"\]\(([^)#\s]+)")
# Files the code writes (not citations): `python -m bench` writes bench.md next to bench.json.
WRITTEN = {"bench.md"}


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    suffixes = {".md", ".py", ".toml", ".sh", ".ts", ".txt", ".cfg", ""}
    skip = ("package-lock.json", "docs/bench.json")
    return [
        REPO / name
        for name in out.splitlines()
        if Path(name).suffix in suffixes and not name.endswith(skip) and (REPO / name).is_file()
    ]


def test_every_cited_file_and_link_resolves_inside_the_repo() -> None:
    """A user who follows `see docs/design.md` or a Markdown link lands on a file that exists."""
    missing = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        cited = set(_CITED_FILE.findall(text))
        if path.suffix == ".md":
            cited |= {link for link in _MD_LINK.findall(text) if "://" not in link}
        for name in cited - WRITTEN:
            if not ((REPO / name).exists() or (path.parent / name).exists()):
                missing.append(f"{path.relative_to(REPO)} cites {name}")
    assert not missing, missing

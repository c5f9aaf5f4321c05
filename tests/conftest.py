"""Shared fixtures: one artifact folder per test session, each model exported at most once.

Exports go through the real CLI (`python -m exporter ...`) so tests exercise what users run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Browser fixtures (live server, Chromium, console log, screenshots): tests/browser_support.py.
pytest_plugins = ["browser_support"]
# Tests never reach a model hub: a hub id must fail fast with the offline message.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run_cli(*args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Runs `python -m exporter ...` from the repo root; returns the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exporter {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


class SharedArtifacts:
    """Exports into one session-wide folder; repeated requests for the same export are free."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._done: set[tuple[str, ...]] = set()

    def export(self, *args: str) -> Path:
        key = tuple(args)
        if key not in self._done:
            run_cli(*args, "--out", str(self.root))
            self._done.add(key)
        return self.root

    def clip(self, model: str, variants: str = "fp32,int8,q4") -> Path:
        return self.export("clip", "--model", model, "--variants", variants)

    def llm(self, model: str, variants: str = "q4,q8", mlc: str | None = "q4f32_1") -> Path:
        extra = ("--mlc", mlc) if mlc else ("--no-mlc",)
        return self.export("llm", "--model", model, "--variants", variants, *extra)

    def whisper(self, model: str, variants: str = "fp32,int8") -> Path:
        return self.export("whisper", "--model", model, "--variants", variants)


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory: pytest.TempPathFactory) -> SharedArtifacts:
    return SharedArtifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory: pytest.TempPathFactory) -> list:
    """espeak-ng sentences + silence/sine/noise as 16 kHz WAV files (exporter/whisper/clips.py)."""
    from exporter.whisper.clips import make_clips

    return make_clips(tmp_path_factory.mktemp("clips"))

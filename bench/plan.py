"""What one `python -m bench` run measures, and the exported models it needs (exported once, then reused)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.errors import LumenError
from contract.manifest import ModelEntry, load_manifest
from runtime.progress import step

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SECTIONS = ("llm", "clip", "load", "sizes", "server", "speech")
# One chat prompt for every engine: long enough that decoding, not the prompt, dominates.
CHAT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
LABELS = ("cat", "dog", "car", "lighthouse", "storm", "tree", "boat", "bird")
TEXTS = tuple(f"a photo of a {label}." for label in LABELS)


class BenchError(LumenError):
    """A benchmark cannot run as asked; `fix` says what to do. The CLI prints both and exits 2."""


@dataclass(frozen=True)
class Plan:
    quick: bool
    runs: int  # timed iterations per measurement, after one warm-up
    min_runs: int  # browser loops stop after min_runs once budget_ms is spent (slow 4-bit WASM kernels)
    budget_ms: int
    sections: tuple[str, ...]
    artifacts: Path
    llm_source: str  # exporter CLI --model
    llm_id: str
    clip_source: str
    clip_id: str
    tokens: int  # new tokens per generation
    threads: tuple[int, ...]  # browser WASM thread counts; native runs at the largest
    batches: tuple[int, ...]
    server_mb: int
    speech_id: str = "whisper-tiny.en"  # exporter --model and manifest id (bench/speech.py)

    def variants(self, entry: ModelEntry) -> list[str]:
        """Every variant of the model; --quick only the browser default (WASM)."""
        return [entry.defaults["wasm"]] if self.quick else list(entry.variants)

    @property
    def native_threads(self) -> int:
        return max(self.threads)


def make_plan(quick: bool, sections: tuple[str, ...], artifacts: Path | None, runs: int | None) -> Plan:
    if quick:
        return Plan(
            True,
            runs or 1,
            1,
            0,
            sections,
            artifacts or RESULTS / "artifacts-quick",
            "tiny-random",
            "tiny-random-llama",
            "tiny-random-clip",
            "tiny-random-clip",
            tokens=8,
            threads=(1, 2),
            batches=(1, 8),
            server_mb=8,
            speech_id="tiny-random-whisper",
        )
    return Plan(
        False,
        runs or 5,
        min(runs or 5, 3),
        60_000,
        sections,
        artifacts or RESULTS / "artifacts",
        "smollm2",
        "smollm2",
        "random-clip-vit-b32",
        "random-clip-vit-b32",
        tokens=32,
        threads=(1, 2),
        batches=(1, 8),
        server_mb=64,
    )


def _export(plan: Plan, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "exporter", *args, "--out", str(plan.artifacts)], cwd=REPO)
    if proc.returncode != 0:
        raise BenchError(
            f"`python -m exporter {' '.join(args)}` failed ({proc.returncode})",
            fix="run that command alone to see its error",
        )


def _stale_choice(entry: ModelEntry) -> bool:
    """Exported before the exporter's current expand-at-load choice: the bench would measure the old one."""
    from exporter.vision_export import EXPAND_WEIGHTS

    return any(v.expand_weights != EXPAND_WEIGHTS.get(name, []) for name, v in entry.variants.items())


def ensure_models(plan: Plan) -> tuple[ModelEntry | None, ModelEntry | None]:
    """(llm entry, clip entry), exporting what the artifact folder lacks. The LLM gets the shipped
    defaults (q4, q8) plus int8, Transformers.js's best file (docs/design.md); CLIP gets fp32, int8, q4."""
    wants_llm = {"llm", "load", "sizes"} & set(plan.sections)
    wants_clip = {"clip", "load", "sizes"} & set(plan.sections)
    manifest = load_manifest(plan.artifacts)
    llm, clip = manifest.get(plan.llm_id), manifest.get(plan.clip_id)
    if wants_llm and (llm is None or not {"q4", "q8", "int8"} <= set(llm.variants)):
        with step(f"[bench] export {plan.llm_source} (once; reused from {plan.artifacts})"):
            _export(plan, ["llm", "--model", plan.llm_source, "--variants", "q4,q8,int8"])
    if wants_clip and (clip is None or not {"fp32", "int8", "q4"} <= set(clip.variants) or _stale_choice(clip)):
        with step(f"[bench] export {plan.clip_source} (once; reused from {plan.artifacts})"):
            _export(plan, ["clip", "--model", plan.clip_source, "--variants", "fp32,int8,q4"])
    manifest = load_manifest(plan.artifacts)
    return (manifest.get(plan.llm_id) if wants_llm else None), (manifest.get(plan.clip_id) if wants_clip else None)

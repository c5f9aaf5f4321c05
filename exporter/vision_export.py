"""`python -m exporter clip`: CLIP / SigLIP / ALIGN -> two ONNX towers per variant + parity report + manifest.

Steps: resolve and check the source (light imports only, so bad input fails in a fraction of a
second) -> model, tokenizer, image processor -> config/tokenizer/processor files -> fp32 towers
-> quantized variants -> every file against PyTorch on fixed probes -> export-report.json -> commit.
Nothing is committed when fp32 parity is below FP32_MIN_COSINE.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contract.manifest import MODEL_ID_PATTERN, ModelEntry, VisionInfo
from exporter.artifacts import ArtifactStore, Staging
from exporter.errors import ArtifactStoreError, ParityError, UnsupportedArchitectureError
from exporter.sources import Source, read_config, resolve
from exporter.tiny_random import TINY_ALIAS, TINY_FAMILIES, TINY_NAMES
from runtime.progress import Timer, step

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast
    from transformers.image_processing_utils import BaseImageProcessor

FP32_MIN_COSINE = 0.9999
# Transformers.js file names: fp32 "", int8 dynamic "_quantized", 4-bit "_q4".
SUFFIXES = {"fp32": "", "int8": "_quantized", "q4": "_q4"}
QUANTIZATION = {
    "fp32": "none",
    "int8": "onnxruntime quantize_dynamic, int8 per-channel weights (MatMul, Conv, Gather)",
    "q4": "onnxruntime MatMulNBits, 4-bit symmetric, block 32 (MatMul only; embeddings stay fp32)",
}
DEFAULT_ORDER = ("int8", "fp32", "q4")  # int8 measured fastest on CPU/WASM; 4-bit MatMulNBits slowest in WASM
TOWERS = ("vision_model", "text_model")
TEMPLATES = {"clip": "a photo of a {}.", "align": "a photo of a {}.", "siglip": "This is a photo of {}."}
REAL_MODEL_HINT = "python -m exporter clip --model openai/clip-vit-base-patch32"
# config.json model_type / architectures -> family
_MODEL_TYPES = {"clip": "clip", "siglip": "siglip", "align": "align"}
_ARCHITECTURES = {"CLIPModel": "clip", "SiglipModel": "siglip", "AlignModel": "align"}
SUPPORTED = "CLIP (CLIPModel), SigLIP (SiglipModel), ALIGN (AlignModel)"


@dataclass
class Loaded:
    family: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    processor: BaseImageProcessor
    trained: bool
    note: str | None


def detect_family(config: dict) -> str:
    """clip | siglip | align from a parsed config.json, else UnsupportedArchitectureError."""
    family = _MODEL_TYPES.get(str(config.get("model_type", "")))
    for arch in config.get("architectures") or []:
        family = family or _ARCHITECTURES.get(arch)
    if family is None:
        found = config.get("architectures") or config.get("model_type") or "nothing"
        raise UnsupportedArchitectureError(
            f"config.json describes {found}, not a dual-encoder vision-language model",
            fix=f"pass a checkpoint of a supported architecture: {SUPPORTED}",
        )
    return family


def export_vision(source: str, out: Path, variants: list[str], model_id: str | None = None) -> ModelEntry:
    src = resolve(source, TINY_NAMES, example="tiny-random-clip")  # TINY_NAMES: cheap import, no torch
    # "tiny-random" is shorthand for the CLIP test model: one id for one model
    model_id = model_id or (src.path.name if src.kind == "folder" else TINY_ALIAS.get(source, source))
    if not re.match(MODEL_ID_PATTERN, model_id):
        raise ArtifactStoreError(
            f"{model_id!r} cannot be a model id (letters, digits, '.', '_', '-', one '/')",
            fix="pass --id with a plain name, e.g. --id my-clip",
        )
    family = detect_family(read_config(src.path)) if src.path else None
    store = ArtifactStore(out)
    store.manifest()  # an unreadable manifest fails now, not after minutes of export
    with step(f"[{model_id}] load {source}"):
        loaded = _load(src, family)
    with store.stage(model_id) as staging, tempfile.TemporaryDirectory(prefix="lumen-fp32-") as work:
        entry = _export_into(staging, Path(work), loaded, source, variants)
    print(f"exported {entry.id} ({', '.join(entry.variants)}) into {out}", file=sys.stderr)
    return entry


def _load(src: Source, family: str | None) -> Loaded:
    from exporter import preprocess_config, tiny_random, tokenizer_files, vision

    if src.kind == "tiny-random":
        family = TINY_FAMILIES[src.tiny_name]
        note = (
            f"Untrained test model ({src.tiny_name}: seeded random weights, meaningless predictions). "
            f"For a real model run `{REAL_MODEL_HINT}` while online."
        )
        if family == "siglip":
            note += (
                " No SigLIP SentencePiece vocabulary is available offline, so this model uses the CLIP BPE "
                "with SigLIP-style fixed-length padding."
            )
        return Loaded(
            family,
            tiny_random.build(src.tiny_name),
            tiny_random.tokenizer(src.tiny_name),
            tiny_random.processor(src.tiny_name),
            trained=False,
            note=note,
        )
    model = vision.load_checkpoint(src.path, family)
    return Loaded(
        family,
        model,
        tokenizer_files.checkpoint_tokenizer(src.path),
        preprocess_config.checkpoint_processor(src.path),
        trained=True,
        note=None,
    )


def _export_into(staging: Staging, work: Path, loaded: Loaded, source: str, variants: list[str]) -> ModelEntry:
    from exporter import preprocess_config, tokenizer_files, vision, vision_probe
    from runtime import text_tokens

    family, model = loaded.family, loaded.model
    max_length = vision.text_max_length(model, loaded.tokenizer.model_max_length)
    text_inputs = vision.text_input_names(family)
    model.config.save_pretrained(staging.dir)
    preprocess_config.write_preprocessor(loaded.processor, staging.dir)
    tokenizer_files.write_tokenizer(loaded.tokenizer, staging.dir, max_length, pad_to_max_length=family == "siglip")

    # Probes go through the written files, as the browser will: preprocessor_config.json, tokenizer.json.
    pixel_values = vision_probe.pixels(staging.dir, vision_probe.probe_images())  # [N, 3, S, S]
    texts = vision_probe.probe_texts(TEMPLATES[family])
    text_feeds = text_tokens.tokenize(staging.dir / "tokenizer.json", texts, text_inputs)  # {name: [M, T]}
    files, timings = _export_files(staging, work, loaded, pixel_values.shape[-1], variants)

    with step(f"[{staging.model_id}] parity vs PyTorch"):
        reference = vision_probe.torch_embeddings(model, pixel_values, text_feeds)
        parity = {v: vision_probe.parity(f, pixel_values, text_feeds, reference) for v, f in files.items()}
    report = {
        "model_id": staging.model_id,
        "family": family,
        "source": source,
        "trained": loaded.trained,
        "versions": vision_probe.versions(),
        "probe": {
            "images": len(pixel_values),
            "image_size": pixel_values.shape[-1],
            "texts": len(texts),
            "labels": list(vision_probe.LABELS),
            "template": TEMPLATES[family],
        },
        "fp32_min_cosine_required": FP32_MIN_COSINE,
        "fp32_parity": parity["fp32"],  # also when fp32 is not shipped: the other variants are made from it
        "variants": {
            v: {
                "quantization": QUANTIZATION[v],
                "parity": parity[v],
                "export_seconds": timings[v],
                "files": {
                    tower: {"path": p.relative_to(staging.dir).as_posix(), "bytes": p.stat().st_size}
                    for tower, p in files[v].items()
                },
            }
            for v in variants
        },
    }
    staging.path("export-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _gate(parity["fp32"], staging.model_id)

    scoring = vision.scoring(model, family)
    info = VisionInfo(
        scoring=scoring.kind,
        logit_scale=scoring.logit_scale,
        logit_bias=scoring.logit_bias,
        template=TEMPLATES[family],
        image_size=pixel_values.shape[-1],
        embed_dim=reference["image"].shape[1],
        text_max_length=max_length,
        pad_to_max_length=family == "siglip",
        text_inputs=text_inputs,
    )
    default = next(v for v in DEFAULT_ORDER if v in variants)
    with step(f"[{staging.model_id}] commit"):
        return staging.commit(
            variants={
                v: {"dtype": v, "files": {tower: f"onnx/{tower}{SUFFIXES[v]}.onnx" for tower in TOWERS}}
                for v in variants
            },
            report="export-report.json",
            task="zero-shot-image-classification",
            family=family,
            source=source,
            trained=loaded.trained,
            note=loaded.note,
            defaults={"wasm": default, "webgpu": default},
            vision=info,
        )


def _export_files(
    staging: Staging, work: Path, loaded: Loaded, image_size: int, variants: list[str]
) -> tuple[dict[str, dict[str, Path]], dict[str, dict[str, float]]]:
    """fp32 towers (into staging if shipped, else into `work`), then each quantized variant from them.

    Returns {variant: {tower: path}} (always with "fp32") and {variant: {tower: seconds}}.
    """
    from exporter import vision
    from runtime import text_tokens

    label = staging.model_id
    fp32 = {
        tower: staging.path(f"onnx/{tower}.onnx") if "fp32" in variants else work / f"{tower}.onnx" for tower in TOWERS
    }
    with step(f"[{label}] export vision tower (fp32)"), Timer() as t_vision:
        vision.export_image_tower(loaded.model, image_size, fp32["vision_model"])
    with step(f"[{label}] export text tower (fp32)"), Timer() as t_text:
        sample = text_tokens.tokenize(staging.dir / "tokenizer.json", ["a photo", "a cat"], ["input_ids"])
        vision.export_text_tower(loaded.model, loaded.family, sample["input_ids"], fp32["text_model"])
    files = {"fp32": fp32}
    timings = {"fp32": {"vision_model": t_vision.seconds, "text_model": t_text.seconds}}
    for variant in (v for v in variants if v != "fp32"):
        files[variant] = {tower: staging.path(f"onnx/{tower}{SUFFIXES[variant]}.onnx") for tower in TOWERS}
        timings[variant] = dict(timings["fp32"])  # every variant starts from the fp32 export
        for tower in TOWERS:
            with step(f"[{label}] {tower} {variant}"), Timer() as t:
                _quantize(variant, fp32[tower], files[variant][tower])
            timings[variant][tower] += t.seconds
    return files, timings


def _quantize(variant: str, fp32_file: Path, dst: Path) -> None:
    from exporter.quantize import quantize_4bit, quantize_int8_dynamic

    if variant == "int8":  # per-channel: text min cosine 0.9989 -> 0.9992 on ViT-B/32, same size
        quantize_int8_dynamic(fp32_file, dst, per_channel=True)
    else:
        quantize_4bit(fp32_file, dst, block_size=32, symmetric=True)


def _gate(fp32: dict, model_id: str) -> None:
    worst = min(fp32["vision_model"]["cosine_min"], fp32["text_model"]["cosine_min"])
    if worst < FP32_MIN_COSINE:
        raise ParityError(
            f"{model_id}: fp32 ONNX disagrees with PyTorch (min cosine {worst:.6f} < {FP32_MIN_COSINE}); "
            "nothing was committed",
            fix="rerun with -v and report the output; pin the versions in pyproject.toml (transformers 4.57.6, torch 2.13)",
        )

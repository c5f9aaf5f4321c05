"""`python -m exporter clip`: CLIP / SigLIP / ALIGN -> per variant two ONNX towers (our engine) and one
combined model (the peers' zero-shot pipelines) + parity report + manifest.

Steps: resolve and check the source (light imports only, so bad input fails in a fraction of a
second) -> model, tokenizer, image processor -> config/tokenizer/processor files -> fp32 graphs
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
from exporter import peer_config
from exporter.artifacts import ArtifactStore, Staging
from exporter.errors import ArtifactStoreError, ParityError, UnsupportedArchitectureError
from exporter.sources import Source, read_config, resolve
from exporter.tiny_random import TINY_ALIAS, TINY_FAMILIES, TINY_NAMES
from runtime.progress import Timer, step

if TYPE_CHECKING:
    import numpy as np
    from transformers import PreTrainedModel, PreTrainedTokenizerFast
    from transformers.image_processing_utils import BaseImageProcessor

FP32_MIN_COSINE = 0.9999
QUANTIZATION = {
    "fp32": "none",
    "int8": "onnxruntime quantize_dynamic, int8 per-channel weights (MatMul, Conv, Gather)",
    "q4": "onnxruntime MatMulNBits, 4-bit symmetric, block 32 (MatMul only; embeddings stay fp32)",
}
# Our variant -> the Transformers.js dtype name that loads its files: fp32 "", int8 dynamic "_quantized", 4-bit "_q4".
PEER_DTYPE = {"fp32": "fp32", "int8": "q8", "q4": "q4"}
SUFFIXES = {variant: peer_config.SUFFIX[dtype] for variant, dtype in PEER_DTYPE.items()}
# Variant -> runtimes that expand its quantized weights to fp32 once at load by default (web/src/engine/
# runtime/onnx_dequant.ts; int8 through onnx_int8_expand.ts when `expandWeights: true` asks). Measured by
# `make bench` on an idle 2-core machine (CLIP ViT-B/32 image, 2 threads, ms at batch 1): int8 as
# downloaded 133, int8 expanded 205, fp32 217; q4 as downloaded 409, q4 expanded 240. So WASM expands
# q4 only: int8 runs fastest as it is, in a third of the memory. WebGPU runs the files as they are.
EXPAND_WEIGHTS: dict[str, list[str]] = {"q4": ["wasm"]}
# The int8 file with its products expanded (on request) must stay this close to PyTorch (it only drops the
# activation rounding of dynamic quantization; int8 alone measures >= 0.999 on ViT-B/32).
EXPANDED_MIN_COSINE = 0.995
DEFAULT_ORDER = ("int8", "fp32", "q4")  # int8 measured fastest on CPU/WASM; 4-bit MatMulNBits slowest in WASM
TOWERS = ("vision_model", "text_model")
COMBINED = "model"  # onnx/model{suffix}.onnx: Transformers.js / optimum zero-shot layout (vision_combined.py)
GRAPHS = (*TOWERS, COMBINED)
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
    model_id = model_id or (src.path.name if src.kind == "folder" and src.path else TINY_ALIAS.get(source, source))
    if not re.match(MODEL_ID_PATTERN, model_id):
        raise ArtifactStoreError(
            f"{model_id!r} cannot be a model id (letters, digits, '.', '_', '-', one '/')",
            fix="pass --id with a plain name, e.g. --id my-clip",
        )
    family = detect_family(read_config(src.path)) if src.path else None
    store = ArtifactStore(out)
    store.preflight()  # a read-only --out or an unreadable manifest fails now, not after minutes of export
    with step(f"[{model_id}] load {source}"):
        loaded = _load(src, family)
    with store.stage(model_id) as staging, tempfile.TemporaryDirectory(prefix="lumen-fp32-") as work:
        entry = _export_into(staging, Path(work), loaded, source, variants)
    print(f"exported {entry.id} ({', '.join(entry.variants)}) into {out}", file=sys.stderr)
    return entry


def _load(src: Source, family: str | None) -> Loaded:
    from exporter import preprocess_config, tiny_random, tokenizer_files, vision

    if src.tiny_name is not None:  # kind "tiny-random"
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
    if src.path is None or family is None:  # resolve() gives a folder a path; export_vision read its family
        raise UnsupportedArchitectureError(f"{src.spec} is neither a checkpoint folder nor a test model", fix=SUPPORTED)
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
    from exporter import preprocess_config, tokenizer_files, vision, vision_combined, vision_probe
    from runtime import text_tokens

    family, model = loaded.family, loaded.model
    max_length = vision.text_max_length(model, loaded.tokenizer.model_max_length)
    text_inputs = vision.text_input_names(family)
    default = next(v for v in DEFAULT_ORDER if v in variants)
    _write_config(model, staging, default)
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
        combined_ref = vision_combined.torch_reference(model, pixel_values, text_feeds)
        for v, f in files.items():
            parity[v][COMBINED] = vision_combined.parity(f[COMBINED], pixel_values, text_feeds, combined_ref)
        expansion = {
            v: _expanded_parity(work, files[v], pixel_values, text_feeds, reference) for v in variants if v == "int8"
        }
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
                **(
                    {"expanded_on": EXPAND_WEIGHTS.get(v, []), "expanded_parity": expansion[v]}
                    if v in expansion
                    else {}
                ),
                "export_seconds": timings[v],
                "files": {
                    graph: {"path": p.relative_to(staging.dir).as_posix(), "bytes": p.stat().st_size}
                    for graph, p in files[v].items()
                },
            }
            for v in variants
        },
    }
    staging.path("export-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _gate(parity["fp32"], staging.model_id)
    for v, expanded in expansion.items():
        _gate_expanded(expanded, v, staging.model_id)

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
    with step(f"[{staging.model_id}] commit"):
        return staging.commit(
            variants={
                v: {
                    "dtype": v,
                    "files": {graph: f"onnx/{graph}{SUFFIXES[v]}.onnx" for graph in GRAPHS},
                    "expand_weights": EXPAND_WEIGHTS.get(v, []),
                }
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


def _write_config(model: PreTrainedModel, staging: Staging, default: str) -> None:
    """config.json as save_pretrained writes it, plus what the peers read (peer_config)."""
    config = json.loads(model.config.to_json_string())
    config = peer_config.clean_config(config, type(model).__name__, staging.model_id)
    defaults = {"wasm": default, "webgpu": default}
    config["transformers.js_config"] = peer_config.transformers_js_config(defaults, PEER_DTYPE)
    staging.path("config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _export_files(
    staging: Staging, work: Path, loaded: Loaded, image_size: int, variants: list[str]
) -> tuple[dict[str, dict[str, Path]], dict[str, dict[str, float]]]:
    """fp32 graphs (into staging if shipped, else into `work`), then each quantized variant from them.

    Returns {variant: {graph: path}} (always with "fp32") and {variant: {graph: seconds}}.
    """
    from exporter import vision, vision_combined
    from runtime import text_tokens

    label = staging.model_id
    fp32 = {
        graph: staging.path(f"onnx/{graph}.onnx") if "fp32" in variants else work / f"{graph}.onnx" for graph in GRAPHS
    }
    with step(f"[{label}] export vision tower (fp32)"), Timer() as t_vision:
        vision.export_image_tower(loaded.model, image_size, fp32["vision_model"])
    with step(f"[{label}] export text tower (fp32)"), Timer() as t_text:
        sample = text_tokens.tokenize(staging.dir / "tokenizer.json", ["a photo", "a cat"], ["input_ids"])
        vision.export_text_tower(loaded.model, loaded.family, sample["input_ids"], fp32["text_model"])
    with step(f"[{label}] export combined model (fp32)"), Timer() as t_combined:
        vision_combined.export_combined(loaded.model, loaded.family, sample["input_ids"], image_size, fp32[COMBINED])
    files = {"fp32": fp32}
    timings = {"fp32": {"vision_model": t_vision.seconds, "text_model": t_text.seconds, COMBINED: t_combined.seconds}}
    for variant in (v for v in variants if v != "fp32"):
        files[variant] = {graph: staging.path(f"onnx/{graph}{SUFFIXES[variant]}.onnx") for graph in GRAPHS}
        timings[variant] = dict(timings["fp32"])  # every variant starts from the fp32 export
        for graph in GRAPHS:
            with step(f"[{label}] {graph} {variant}"), Timer() as t:
                _quantize(variant, fp32[graph], files[variant][graph])
            timings[variant][graph] += t.seconds
    return files, timings


def _quantize(variant: str, fp32_file: Path, dst: Path) -> None:
    from exporter.quantize import quantize_4bit, quantize_int8_dynamic

    if variant == "int8":  # per-channel: text min cosine 0.9989 -> 0.9992 on ViT-B/32, same size
        quantize_int8_dynamic(fp32_file, dst, per_channel=True)
    else:
        quantize_4bit(fp32_file, dst, block_size=32, symmetric=True)


def _expanded_parity(
    work: Path, files: dict[str, Path], pixel_values: np.ndarray, text_feeds: dict[str, np.ndarray], reference: dict
) -> dict:
    """The int8 towers as the browser runs them when asked to expand (`expandWeights: true`;
    runtime/onnx_int8_expand.py), against PyTorch; plus how many products were rewritten and how many DynamicQuantizeLinear remain."""
    from exporter import vision_probe
    from runtime.onnx_int8_expand import expand_file

    expanded, counts = {}, {}
    for tower in TOWERS:
        expanded[tower] = work / f"{tower}.expanded.onnx"
        done = expand_file(files[tower], expanded[tower])
        counts[tower] = {"products": done.products, "dynamic_quantize_left": done.dynamic_quantize_left}
    out = vision_probe.parity(expanded, pixel_values, text_feeds, reference)
    for tower in TOWERS:
        out[tower].update(counts[tower])
        expanded[tower].unlink()
    return out


def _gate_expanded(expanded: dict, variant: str, model_id: str) -> None:
    for tower in TOWERS:
        stats = expanded[tower]
        if stats["products"] == 0 or stats["dynamic_quantize_left"] > 0 or stats["cosine_min"] < EXPANDED_MIN_COSINE:
            raise ParityError(
                f"{model_id}: {variant} {tower} expanded to fp32 weights (as the browser runs it on WASM) "
                f"rewrote {stats['products']} products, left {stats['dynamic_quantize_left']} "
                f"DynamicQuantizeLinear, min cosine vs PyTorch {stats['cosine_min']:.6f} "
                f"(needs all of them, and >= {EXPANDED_MIN_COSINE}); nothing was committed",
                fix="rerun with -v and report the output; pin onnxruntime as constraints.txt does "
                "(the rewrite expects its quantize_dynamic graph)",
            )


def _gate(fp32: dict, model_id: str) -> None:
    combined = fp32[COMBINED]
    worst = min(
        fp32["vision_model"]["cosine_min"],
        fp32["text_model"]["cosine_min"],
        combined["image_embeds"]["cosine_min"],
        combined["text_embeds"]["cosine_min"],
    )
    if worst < FP32_MIN_COSINE:
        raise ParityError(
            f"{model_id}: fp32 ONNX disagrees with PyTorch (min cosine {worst:.6f} < {FP32_MIN_COSINE}); "
            "nothing was committed",
            fix="rerun with -v and report the output; pin the versions in pyproject.toml (transformers 4.57.6, torch 2.13)",
        )

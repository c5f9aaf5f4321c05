"""Whisper -> onnx/encoder_model*.onnx + onnx/decoder_model_merged*.onnx (KV cache), the Transformers.js layout.

optimum-onnx's `automatic-speech-recognition-with-past` export writes the encoder
(input_features [B, n_mels, 3000] -> last_hidden_state [B, 1500, d]) and a merged decoder
(input_ids, encoder_hidden_states, past_key_values.N.{decoder,encoder}.{key,value}, use_cache_branch
-> logits, present.*): one file for the first step (computes the cross-attention cache) and the next.
Quantized variants are made from the fp32 files with onnxruntime's quantizers. The merged decoder
keeps its layers inside the two branches of an If node, which the quantizers do not enter; so the
two unmerged decoders are quantized and then merged (optimum's merge_decoders), as for fp32.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.progress import Timer, step

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration

ROLES = ("encoder_model", "decoder_model_merged")
# Transformers.js file suffixes: fp32 "", int8 dynamic "_quantized", 4-bit "_q4".
SUFFIXES = {"fp32": "", "int8": "_quantized", "q4": "_q4"}
QUANTIZATION = {
    "fp32": "none",
    "int8": "onnxruntime quantize_dynamic, int8 per-channel weights (MatMul and the token embedding; the conv front end stays fp32)",
    "q4": "onnxruntime MatMulNBits, 4-bit symmetric, block 32 (MatMul only)",
}


def rest_path(role: str, variant: str) -> str:
    return f"onnx/{role}{SUFFIXES[variant]}.onnx"


UNMERGED = ("decoder_model", "decoder_with_past_model")


def export_fp32(model: WhisperForConditionalGeneration, work: Path, label: str) -> dict[str, Path]:
    """fp32 files in `work`: the two roles, plus the unmerged decoders (quantized variants start from them)."""
    from optimum.exporters.onnx import onnx_export_from_model

    out = work / "optimum"
    with step(f"[{label}] export encoder + merged decoder (fp32, optimum-onnx)"):
        onnx_export_from_model(model, out, task="automatic-speech-recognition-with-past", do_validation=False)
    return {name: out / f"{name}.onnx" for name in (*ROLES, *UNMERGED)}


def _quantize(variant: str, src: Path, dst: Path) -> None:
    from exporter.quantize import quantize_4bit, quantize_int8_dynamic

    if variant == "int8":
        quantize_int8_dynamic(src, dst, op_types=["MatMul", "Gather"], per_channel=True)
    else:
        quantize_4bit(src, dst, block_size=32, symmetric=True)


def _quantized_merged_decoder(variant: str, fp32: dict[str, Path], target: Path) -> None:
    from optimum.onnx import merge_decoders

    parts = {name: fp32[name].with_name(f"{name}{SUFFIXES[variant]}.onnx") for name in UNMERGED}
    for name, path in parts.items():
        _quantize(variant, fp32[name], path)
    # strict=False: the two graphs differ in outputs (present.*.encoder only without past), as for fp32.
    merge_decoders(parts["decoder_model"], parts["decoder_with_past_model"], save_path=target, strict=False)


def write_variants(
    fp32: dict[str, Path], dest: Path, variants: list[str], label: str
) -> tuple[dict[str, dict[str, Path]], dict[str, float]]:
    """{variant: {role: file in dest}} and {variant: seconds to make it}."""
    files: dict[str, dict[str, Path]] = {}
    seconds: dict[str, float] = {}
    for variant in variants:
        files[variant] = {}
        with Timer() as t:
            for role in ROLES:
                target = dest / rest_path(role, variant)
                target.parent.mkdir(parents=True, exist_ok=True)
                with step(f"[{label}] {role} {variant}"):
                    if variant == "fp32":
                        shutil.copyfile(fp32[role], target)
                    elif role == "decoder_model_merged":
                        _quantized_merged_decoder(variant, fp32, target)
                    else:
                        _quantize(variant, fp32[role], target)
                files[variant][role] = target
        seconds[variant] = t.seconds
    return files, seconds

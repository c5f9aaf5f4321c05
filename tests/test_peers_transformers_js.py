"""Transformers.js 4.3.2 (Node, onnxruntime-node CPU) loads our exports with its own pipelines, offline.

zero-shot-image-classification on the combined model of every family, for the default dtype (from
config.json's transformers.js_config) and every dtype name we write: scores equal our Python
reference (the towers, as our engine runs them) within 1e-4 on images at the model's input size,
top-1 equal on larger images. text-generation with no dtype and with each dtype we ship: the greedy
tokens equal Python onnxruntime's on the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from contract.manifest import load_manifest
from exporter import peer_config
from exporter.vision_export import PEER_DTYPE as VISION_DTYPE
from exporter.vision_probe import LABELS, probe_images
from peers_support import library_suffixes, transformers_js, write_images
from reference.vision import VisionModel, apply_template
from runtime.onnx_decoder import OnnxDecoder

FAMILIES = ("tiny-random-clip", "tiny-random-siglip", "tiny-random-align")
SCORE_TOLERANCE = 1e-4
# ALIGN's int8 EfficientNet (ConvInteger, activations quantized at run time): the peer's float
# preprocessing differs from Pillow's by ~1e-6, and a value that lands in the next int8 bucket
# moves a score by up to 2.9e-4 (measured; its fp32 file agrees to 5e-5).
QUANTIZED_CONV_TOLERANCE = 5e-4
RESIZE_TOLERANCE = 0.03
NEW_TOKENS = 32


def test_our_dtype_suffixes_are_the_librarys():
    """peer_config.SUFFIX (what the exporters name files by) read against the installed library's source."""
    library = library_suffixes()
    assert {dtype: library[dtype] for dtype in peer_config.SUFFIX} == peer_config.SUFFIX


def _dtypes(variants: dict[str, str], entry) -> dict[str | None, str]:
    """Transformers.js dtype name (None: no dtype given) -> our variant whose files it must load."""
    names: dict[str | None, str] = {None: entry.defaults["wasm"]}
    names |= {variants[v]: v for v in entry.variants}
    return names


@pytest.mark.parametrize("model_id", FAMILIES)
def test_zero_shot_pipeline_scores_equal_our_reference(shared_artifacts, tmp_path, model_id):
    root = shared_artifacts.clip(model_id)  # fp32, int8, q4
    entry = load_manifest(root).get(model_id)
    size = entry.vision.image_size
    small = write_images(probe_images()[:6], tmp_path / "small", (size, size))
    large = write_images(probe_images()[6:], tmp_path / "large", None)  # 37x53 .. 200x50: the peer resizes
    labels = list(LABELS[:8])
    dtypes = _dtypes(VISION_DTYPE, entry)
    results = transformers_js(
        {
            "task": "zero-shot-image-classification",
            "root": str(root),
            "model": model_id,
            "dtypes": list(dtypes),
            "images": [str(p) for p in small + large],
            "labels": labels,
            "template": entry.vision.template,
        }
    )
    texts = [apply_template(entry.vision.template, label) for label in labels]
    for (dtype, variant), result in zip(dtypes.items(), results, strict=True):
        assert result["sessions"] == {"model": {"dtype": VISION_DTYPE[variant], "device": "cpu"}}, dtype
        ours = VisionModel(root, model_id, variant)
        # One image per call, as the pipeline runs them: dynamic int8 quantizes each activation
        # tensor with ranges taken over the whole batch, so batch-mates would change the numbers.
        image_embeds = np.concatenate([ours.embed_images([Image.open(p)]) for p in small + large])
        expected = ours.scores(image_embeds, ours.embed_texts(texts))  # [images, labels]
        got = np.array(result["scores"])
        n = len(small)
        tolerance = QUANTIZED_CONV_TOLERANCE if (entry.family, variant) == ("align", "int8") else SCORE_TOLERANCE
        assert np.abs(got[:n] - expected[:n]).max() <= tolerance, (dtype, got[:n] - expected[:n])
        # Larger images: the peer resizes with sharp, we with Pillow; on these 32-pixel models that moves
        # scores by up to ~0.02 (measured), so top-1 is compared where our margin is beyond that noise.
        assert np.abs(got[n:] - expected[n:]).max() <= RESIZE_TOLERANCE, dtype
        top2 = np.sort(expected[n:], axis=-1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > RESIZE_TOLERANCE
        assert (got[n:].argmax(-1) == expected[n:].argmax(-1))[clear].all(), (dtype, got[n:], expected[n:])


@pytest.fixture(scope="module")
def tiny_llm_all_variants(tmp_path_factory) -> Path:
    """Every LLM variant of the tiny model, in its own folder (the shared one holds the default q4,q8)."""
    root = tmp_path_factory.mktemp("peers-llm")
    run_cli("llm", "--model", "tiny-random", "--variants", "q4,q8,int8,fp32", "--no-mlc", "--out", str(root))
    return root


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """Transformers.js stops at an eos token (keeping it); our reference decodes a fixed count."""
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens


def _check_text_generation(root: Path, model_id: str, prompts: int) -> None:
    from transformers import AutoTokenizer

    from exporter.llm_export import PEER_DTYPE as LLM_DTYPE

    entry = load_manifest(root).get(model_id)
    report = json.loads((root / entry.report).read_text())
    prompt_ids = report["reference"]["prompt_token_ids"][:prompts]
    dtypes = _dtypes(LLM_DTYPE, entry)
    results = transformers_js(
        {
            "task": "text-generation",
            "root": str(root),
            "model": model_id,
            "dtypes": list(dtypes),
            "prompts": report["prompts"][:prompts],
            "prompt_ids": prompt_ids,
            "new_tokens": NEW_TOKENS,
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(root / model_id)
    plain = tokenizer("Hello world").input_ids  # checked against the GGUF's own vocabulary in test_peers_optimum
    for (dtype, variant), result in zip(dtypes.items(), results, strict=True):
        assert result["plain_ids"] == plain, dtype  # no <|im_start|> prepended (GGUF add_bos_token = false)
        assert result["sessions"] == {"model": {"dtype": LLM_DTYPE[variant], "device": "cpu"}}, dtype
        decoder = OnnxDecoder(root / entry.variants[variant].files["model"])
        for i, ids in enumerate(prompt_ids):
            ours = _until_eos(decoder.greedy(ids, NEW_TOKENS)[0], entry.llm.eos_token_ids)
            assert result["token_ids"][i] == ours, (dtype, i)
            assert result["pipeline_text"][i] == tokenizer.decode(ours, skip_special_tokens=True), (dtype, i)


def test_text_generation_pipeline_tiny_every_dtype(tiny_llm_all_variants):
    _check_text_generation(tiny_llm_all_variants, "tiny-random-llama", prompts=4)


@pytest.mark.slow
def test_text_generation_pipeline_smollm2(shared_artifacts):
    root = shared_artifacts.llm("smollm2")  # q4, q8 (+ MLC): the default export
    _check_text_generation(root, "smollm2", prompts=2)

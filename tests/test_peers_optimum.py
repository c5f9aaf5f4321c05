"""optimum-onnx / transformers (Python) load our exports with their own classes: same numbers as ours.

ORTModelForZeroShotImageClassification on the combined model, ORTModelForCausalLM on every LLM
file, the transformers tokenizer on plain text against the GGUF's own vocabulary and flags, and the
config.json fields those loaders read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoImageProcessor, AutoTokenizer

from conftest import run_cli
from contract.manifest import load_manifest
from exporter.gguf.reader import GgufFile
from exporter.sources import packaged_smollm2_gguf
from exporter.vision_probe import LABELS, probe_images
from reference.vision import VisionModel, apply_template
from runtime.onnx_decoder import OnnxDecoder

FAMILIES = ("tiny-random-clip", "tiny-random-siglip", "tiny-random-align")
SCORE_TOLERANCE = 1e-4
PLAIN_TEXTS = ("Hello world", "The capital of France is Paris.", "  two spaces, émoji 🙂 and 123")


@pytest.mark.parametrize("model_id", FAMILIES)
def test_optimum_zero_shot_scores_equal_our_reference(shared_artifacts, model_id):
    from optimum.onnxruntime import ORTModelForZeroShotImageClassification

    root = shared_artifacts.clip(model_id)
    entry = load_manifest(root).get(model_id)
    folder = root / model_id
    tokenizer, processor = AutoTokenizer.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder)
    labels = list(LABELS[:8])
    texts = [apply_template(entry.vision.template, label) for label in labels]
    # transformers' own zero-shot pipeline pads SigLIP to max_length, everything else to the longest
    text_inputs = tokenizer(texts, padding="max_length" if entry.family == "siglip" else True, return_tensors="np")
    images = probe_images()[:4]
    for variant, spec in entry.variants.items():
        model = ORTModelForZeroShotImageClassification.from_pretrained(
            folder, subfolder="onnx", file_name=Path(spec.files["model"]).name
        )
        ours = VisionModel(root, model_id, variant)
        expected = ours.scores(
            np.concatenate([ours.embed_images([image]) for image in images]), ours.embed_texts(texts)
        )  # [images, labels]; one image per call: dynamic int8 ranges span the batch
        for i, image in enumerate(images):
            pixels = processor(images=[image], return_tensors="np")["pixel_values"]
            feeds = {k: v for k, v in text_inputs.items() if k in model.input_names}
            logits = model(pixel_values=pixels, **feeds).logits_per_image[0]  # [labels]
            if entry.family == "siglip":
                scores = 1 / (1 + np.exp(-logits))
            else:
                scores = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            assert np.abs(scores - expected[i]).max() <= SCORE_TOLERANCE, (variant, i)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("optimum-llm")
    run_cli("llm", "--model", "tiny-random", "--variants", "q4,q8,int8,fp32", "--no-mlc", "--out", str(root))
    return root


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    return next((tokens[: i + 1] for i, t in enumerate(tokens) if t in eos), tokens)


def _check_causal_lm(root: Path, model_id: str, prompts: int) -> None:
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    entry = load_manifest(root).get(model_id)
    report = json.loads((root / entry.report).read_text())
    for variant, spec in entry.variants.items():
        path = root / spec.files["model"]
        model = ORTModelForCausalLM.from_pretrained(root / model_id, subfolder="onnx", file_name=path.name)
        decoder = OnnxDecoder(path)
        for ids in report["reference"]["prompt_token_ids"][:prompts]:
            out = model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False)
            ours = _until_eos(decoder.greedy(ids, 32)[0], entry.llm.eos_token_ids)
            assert out[0, len(ids) :].tolist() == ours, variant


def test_optimum_causal_lm_tiny_every_variant(tiny_llm):
    _check_causal_lm(tiny_llm, "tiny-random-llama", prompts=2)


@pytest.mark.slow
def test_optimum_causal_lm_smollm2(shared_artifacts):
    _check_causal_lm(shared_artifacts.llm("smollm2"), "smollm2", prompts=1)


def test_plain_text_ids_equal_the_ggufs_tokenizer(tiny_llm):
    """tiny-random-llama carries SmolLM2's tokenizer from the packaged GGUF (as the smollm2 export does)."""
    gguf = GgufFile(packaged_smollm2_gguf())
    vocabulary = gguf.field("tokenizer.ggml.tokens")
    add_bos, bos = bool(gguf.field("tokenizer.ggml.add_bos_token")), int(gguf.field("tokenizer.ggml.bos_token_id"))
    assert add_bos is False  # SmolLM2's GGUF: plain text gets no <|im_start|>
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm / "tiny-random-llama")
    byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
    for text in PLAIN_TEXTS:
        ids = tokenizer(text).input_ids
        assert (ids[0] == bos) == add_bos, text
        body = ids[1:] if add_bos else ids
        pieces = "".join(vocabulary[i] for i in body)  # the GGUF's own strings for those ids
        assert bytes(byte_decoder[c] for c in pieces).decode("utf-8") == text


def _bytes_to_unicode() -> dict[int, str]:
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    return bytes_to_unicode()


def test_llm_config_has_real_fields_and_a_peer_default(tiny_llm):
    entry = load_manifest(tiny_llm).get("tiny-random-llama")
    config = json.loads((tiny_llm / "tiny-random-llama" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["_name_or_path"] == "tiny-random-llama" and "/" not in config["_name_or_path"]
    js = config["transformers.js_config"]
    default_file = Path(entry.variants[entry.defaults["wasm"]].files["model"]).name
    from exporter.peer_config import SUFFIX

    assert f"model{SUFFIX[js['dtype']]}.onnx" == default_file
    assert entry.variants["int8"].files["model"].endswith("onnx/model_int8.onnx")  # dynamic int8: never `q8`
    assert entry.variants["q8"].files["model"].endswith("onnx/model_quantized.onnx")


@pytest.mark.parametrize("model_id", FAMILIES)
def test_vision_manifest_lists_the_combined_model_with_parity(shared_artifacts, model_id):
    root = shared_artifacts.clip(model_id)
    entry = load_manifest(root).get(model_id)
    report = json.loads((root / entry.report).read_text())
    config = json.loads((root / model_id / "config.json").read_text())
    assert config["architectures"] and config["_name_or_path"] == model_id
    for variant, spec in entry.variants.items():
        assert entry.file(spec.files["model"]) is not None
        combined = report["variants"][variant]["parity"]["model"]
        assert combined["logits_per_text_is_transpose"]
        if variant == "fp32":
            assert combined["image_embeds"]["cosine_min"] >= 0.9999 and combined["text_embeds"]["cosine_min"] >= 0.9999
            assert combined["logits_per_image_max_abs_diff"] <= 1e-4 and combined["top1_agreement"] == 1.0


def test_siglip_tokenizer_pads_to_its_fixed_length(shared_artifacts):
    """The text tower takes [batch, 64]: the tokenizer files pad there by themselves."""
    from tokenizers import Tokenizer

    folder = shared_artifacts.clip("tiny-random-siglip") / "tiny-random-siglip"
    assert all(len(e.ids) == 64 for e in Tokenizer.from_file(str(folder / "tokenizer.json")).encode_batch(["a", "b c"]))
    assert AutoTokenizer.from_pretrained(folder).model_max_length == 64


def test_siglip_combined_model_takes_shorter_text(shared_artifacts):
    """`padding=True` (the longest text, not 64) gives the scores that max_length padding gives: the graph pads."""
    from optimum.onnxruntime import ORTModelForZeroShotImageClassification

    folder = shared_artifacts.clip("tiny-random-siglip") / "tiny-random-siglip"
    tokenizer, processor = AutoTokenizer.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder)
    model = ORTModelForZeroShotImageClassification.from_pretrained(folder, subfolder="onnx", file_name="model.onnx")
    pixels = processor(images=probe_images()[:2], return_tensors="np")["pixel_values"]
    texts = ["This is a photo of cat.", "This is a photo of a small dog."]
    longest = tokenizer(texts, padding=True, return_tensors="np")["input_ids"]
    full = tokenizer(texts, padding="max_length", return_tensors="np")["input_ids"]
    assert longest.shape[1] < 64 and full.shape[1] == 64
    a = model(input_ids=longest, pixel_values=pixels).logits_per_image
    b = model(input_ids=full, pixel_values=pixels).logits_per_image
    assert np.abs(a - b).max() <= 1e-5

"""Tiny-random GGUFs (tests/gguf_tiny.py) of every supported architecture, each holding every carried
tensor type: the exporter carries every block exactly (its own check: the blocks dequantize bit for
bit to the weights transformers' GGUF loader produced) and the ONNX decoder follows PyTorch.
The PyTorch reference (transformers' GGUF loader) and the onnxruntime loop here are independent of
the exporter's own fidelity code."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import run_cli
from gguf_tiny import ARCHITECTURES, SLIDING_WINDOW, TYPES, tensor_types, write_tiny_gguf


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """arch -> (gguf path, artifact folder of its q4 export); each exported once per module."""
    root = tmp_path_factory.mktemp("tiny-gguf")
    out = root / "artifacts"
    done = {}

    def get(arch: str):
        if arch not in done:
            path = write_tiny_gguf(root / f"tiny-{arch}.gguf", arch)
            run_cli("llm", "--model", str(path), "--variants", "q4", "--no-mlc", "--out", str(out))
            done[arch] = (path, out / f"tiny-{arch}")
        return done[arch]

    return get


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_type_is_carried_and_meets_the_carried_targets(exported, arch):
    path, folder = exported(arch)
    assert tensor_types(path) == set(TYPES)
    report = json.loads((folder / "export-report.json").read_text())
    q4 = report["variants"]["q4"]
    assert q4["how"].startswith("GGUF blocks carried over exactly")
    assert all(t in q4["how"] for t in TYPES)
    assert q4["meets_carried_targets"] and q4["forced_agreement"] >= 0.99 and abs(q4["nll_rel_diff"]) <= 0.01
    assert q4["greedy_match"] == [32] * len(report["prompts"])
    assert report["architecture"] == arch


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_onnx_logits_follow_transformers_gguf_loader(exported, arch):
    path, folder = exported(arch)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    ids = np.random.default_rng(3).integers(4, 500, size=(1, 4 * SLIDING_WINDOW + 3))  # past Gemma's window
    with torch.inference_mode():
        expected = model(torch.from_numpy(ids)).logits[0].numpy()
    session = ort.InferenceSession(str(folder / "onnx/model_q4.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "position_ids" in inputs:
        feed["position_ids"] = np.arange(ids.shape[1])[None]
    for name, arg in inputs.items():
        if name.startswith("past_key_values."):
            feed[name] = np.zeros((1, int(arg.shape[1]), 0, int(arg.shape[3])), np.float32)
    logits = session.run(["logits"], feed)[0][0]
    assert np.abs(logits - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    assert (logits.argmax(-1) == expected.argmax(-1)).all()


def test_unsupported_architecture_is_a_named_error_listing_the_supported(tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny-falcon.gguf", "falcon")
    proc = run_cli("llm", "--model", str(path), "--no-mlc", "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "'falcon'" in proc.stderr and "llama, qwen2, qwen3, gemma3" in proc.stderr
    assert "fix:" in proc.stderr and not (tmp_path / "out" / "manifest.json").exists()


def test_unsupported_tensor_type_is_a_named_error_listing_the_supported(tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny-q2k.gguf", "llama", types_cycle=("Q4_K", "Q2_K"))
    proc = run_cli("llm", "--model", str(path), "--no-mlc", "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "has type Q2_K" in proc.stderr
    assert "supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, F32, F16, BF16" in proc.stderr

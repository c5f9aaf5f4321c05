"""LLM export (issue #3, ONNX path): GGUF block carry-over, KV-cache decoder, manifest, fidelity report.

Fast tests use tiny-random and synthetic ggml blocks; one slow test checks the real SmolLM2 export.
References are independent of the code under test: gguf-py's own (de)quantizers, transformers'
GGUF loader and RoPE un-permutation, PyTorch, and plain onnxruntime loops written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from gguf import GGMLQuantizationType, quants
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from contract.manifest import load_manifest
from exporter.artifacts import sha256_file
from exporter.errors import CarriedBlocksError
from exporter.gguf.blocks import nibble_parts, pack_nibbles
from exporter.gguf.carry import rope_unpermute_order
from exporter.gguf.quants import unpack_blocks
from exporter.llm_onnx import carry_blocks

TINY = "tiny-random-llama"
SMOLLM2 = "smollm2"


def _ggml(weight: np.ndarray, kind: str) -> np.ndarray:
    return quants.quantize(weight, GGMLQuantizationType[kind])


def _synthetic_weight(n: int = 6, k: int = 96) -> np.ndarray:
    """Random rows plus one constant block (ggml stores it with d == 0) and one all-zero block."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(n, k)).astype(np.float32)
    w[1, 32:64] = 0.75  # d == 0, m == 0.75
    w[2, 0:32] = 0.0  # d == 0, m == 0
    return w


@pytest.mark.parametrize("kind", ["Q4_1", "Q4_0", "Q8_0"])
def test_ggml_blocks_unpack_to_gguf_py_values_exactly(kind):
    w = _synthetic_weight()
    raw = _ggml(w, kind)
    blocks = unpack_blocks(raw, kind, w.shape)
    expected = quants.dequantize(raw, GGMLQuantizationType[kind]).reshape(w.shape)
    assert np.array_equal(blocks.dequantize(), expected)  # bit for bit, d == 0 blocks included
    if kind == "Q4_1":
        assert (blocks.scales == 0).sum() == 2 and blocks.mins[1, 1] == np.float32(0.75)
    # the 4-bit parts MatMulNBits gets add up to the same values, exactly
    parts = nibble_parts(blocks)
    assert len(parts) == (2 if kind == "Q8_0" else 1) and all(p.bits == 4 and p.codes.max() < 16 for p in parts)
    total = sum(p.dequantize() for p in parts) + (0 if blocks.mins is None else np.repeat(blocks.mins, 32, axis=1))
    assert np.array_equal(total, expected)


def test_q4_1_nibble_order_and_matmulnbits_packing():
    """ggml: byte j of a block holds element j (low) and j+16 (high); MatMulNBits: 2j (low), 2j+1 (high)."""
    codes = np.arange(32, dtype=np.uint8) % 16  # element i has code i % 16
    qs = codes[:16] | (codes[16:] << 4)  # ggml's layout, written out by hand
    block = np.concatenate([np.float16(1).reshape(1).view(np.uint8), np.float16(0).reshape(1).view(np.uint8), qs])
    weight = unpack_blocks(block, "Q4_1", (1, 32))
    assert weight.codes[0, 0].tolist() == codes.tolist()
    packed = pack_nibbles(weight)[0, 0]
    assert [(b & 15, b >> 4) for b in packed] == [(codes[2 * j], codes[2 * j + 1]) for j in range(16)]


def test_rope_rows_reordered_like_transformers_gguf_loader():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    n_head, head_dim, k = 3, 8, 64
    hf = np.random.default_rng(1).normal(size=(n_head * head_dim, k)).astype(np.float32)
    # llama.cpp's converter: rows of each head interleaved for its RoPE layout
    gguf_order = hf.reshape(n_head, 2, head_dim // 2, k).swapaxes(1, 2).reshape(hf.shape)
    raw = _ggml(gguf_order, "Q4_1")
    carried = unpack_blocks(raw, "Q4_1", hf.shape).take_rows(rope_unpermute_order(hf.shape[0], n_head))
    loader = LlamaTensorProcessor({"num_attention_heads": n_head, "num_key_value_heads": n_head})
    expected = loader._reverse_permute_weights(
        quants.dequantize(raw, GGMLQuantizationType.Q4_1).reshape(hf.shape), n_head, n_head
    )
    assert np.array_equal(carried.dequantize(), expected)
    assert np.abs(carried.dequantize() - hf).max() < 0.5  # and it is the HF order, not another permutation


@pytest.mark.parametrize("kind", ["Q4_1", "Q8_0"])
def test_carried_blocks_run_in_onnxruntime_as_the_dequantized_matmul(kind):
    """One Linear and one embedding as an ONNX graph: carry_blocks' output equals x @ W^T and W[ids]."""
    w = _synthetic_weight(n=40, k=96)
    blocks = unpack_blocks(_ggml(w, kind), kind, w.shape)
    dense = blocks.dequantize()  # [N, K]
    graph = helper.make_graph(
        [
            helper.make_node(
                "Gather", ["model.embed_tokens.weight", "ids"], ["emb"], name="/model/embed_tokens/Gather"
            ),
            helper.make_node("MatMul", ["emb", "lm_head.weight_t"], ["logits"], name="/lm_head/MatMul"),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "s"])],
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, "s", 96]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "s", 40]),
        ],
        [
            numpy_helper.from_array(dense, "model.embed_tokens.weight"),
            numpy_helper.from_array(np.ascontiguousarray(dense.T), "lm_head.weight_t"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    other = onnx.ModelProto()
    other.CopyFrom(model)
    carried = carry_blocks(model, {"lm_head": blocks}, blocks)
    ops = [n.op_type for n in carried.graph.node]
    assert ops.count("MatMulNBits") == len(nibble_parts(blocks))
    assert ops.count("MatMul") == (1 if kind == "Q4_1" else 0)  # Q4_1: the block minimums' small MatMul
    assert not any(i.name in ("model.embed_tokens.weight", "lm_head.weight_t") for i in carried.graph.initializer)
    ids = np.array([[0, 1, 2, 39, 1]], np.int64)
    emb, logits = ort.InferenceSession(carried.SerializeToString()).run(["emb", "logits"], {"ids": ids})
    assert np.array_equal(emb[0], dense[ids[0]])  # the embedding is exact
    expected = dense[ids[0]].astype(np.float64) @ dense.T.astype(np.float64)
    assert np.abs(logits[0] - expected).max() < 1e-4 * np.abs(expected).max()
    with pytest.raises(CarriedBlocksError, match="do not dequantize"):  # blocks of another weight are refused
        carry_blocks(other, {"lm_head": unpack_blocks(_ggml(w * 2, kind), kind, w.shape)}, None)


# ---------------------------------------------------------------- tiny-random through the real CLI


@pytest.fixture(scope="module")
def tiny(shared_artifacts) -> tuple[Path, object]:
    root = shared_artifacts.llm(TINY)  # defaults (q4,q8 + MLC q4f32_1), shared with the browser tests
    return root, load_manifest(root).get(TINY)


def test_tiny_export_manifest_and_files(tiny):
    root, entry = tiny
    assert entry.task == "text-generation" and entry.family == "llama" and entry.trained is False
    assert set(entry.variants) == {"q4", "q8"} and set(entry.defaults) == {"wasm", "webgpu"}
    assert entry.variants["q4"].files == {"model": f"{TINY}/onnx/model_q4.onnx"}
    for f in entry.files:  # written content round-trips: sizes and hashes as the manifest says
        assert (root / f.path).stat().st_size == f.bytes and sha256_file(root / f.path) == f.sha256
    llm = entry.llm
    assert (llm.num_layers, llm.num_kv_heads, llm.head_dim, llm.vocab_size) == (2, 2, 16, 49152)
    assert 2 in llm.eos_token_ids and llm.bos_token_id == 1
    folder = root / TINY
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == llm.eos_token_ids
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>" and "<|im_start|>" in tokenizer_config["chat_template"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n") and tokenizer.eos_token_id == 2
    report = json.loads((root / entry.report).read_text())
    for variant in ("q4", "q8"):
        numbers = report["variants"][variant]
        assert numbers["decode_tok_s"] > 0 and numbers["bytes"] == (folder / numbers["file"]).stat().st_size
    assert [b.quantization for b in llm.mlc] == ["q4f32_1"]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _feed(session: ort.InferenceSession, ids: list[int], start: int, past: dict[str, np.ndarray] | None):
    kv = [i for i in session.get_inputs() if i.name.startswith("past_key_values.")]
    empty = {i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32) for i in kv}
    return {
        "input_ids": np.array([ids], np.int64),
        "attention_mask": np.ones((1, start + len(ids)), np.int64),
        "position_ids": np.arange(start, start + len(ids))[None],
        **(past if past is not None else empty),
    }


@pytest.mark.parametrize("variant", ["q4", "q8"])
def test_kv_cache_token_by_token_equals_one_full_pass(tiny, variant):
    root, entry = tiny
    session = _session(root / entry.variants[variant].files["model"])
    names = [o.name for o in session.get_outputs()]
    ids = [1, 9690, 198, 2683, 314, 253, 5356, 30, 2]
    full = session.run(["logits"], _feed(session, ids, 0, None))[0][0]  # [S, V]
    past, steps = None, []
    for pos, token in enumerate(ids):
        out = dict(zip(names, session.run(None, _feed(session, [token], pos, past)), strict=True))
        past = {n.replace("present.", "past_key_values."): v for n, v in out.items() if n.startswith("present.")}
        steps.append(out["logits"][0, -1])
    assert np.abs(np.stack(steps) - full).max() < 1e-4


def test_tiny_onnx_follows_pytorch(tiny):
    """The q8 file against the seeded PyTorch model, rebuilt here: same next tokens, logits close."""
    from exporter.llm_sources import load_llm

    root, entry = tiny
    loaded = load_llm(TINY)
    ids = [1, 9690, 198, 2683, 314, 253, 5356, 30, 2, 198, 1, 520, 9531]
    with torch.inference_mode():
        expected = loaded.model(torch.tensor([ids])).logits[0].numpy()
    session = _session(root / entry.variants["q8"].files["model"])
    got = session.run(["logits"], _feed(session, ids, 0, None))[0][0]
    assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.9
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


# ---------------------------------------------------------------- bad input: named errors, exit code 2


def test_corrupt_gguf_is_a_named_error(tmp_path):
    from exporter.errors import CorruptCheckpointError
    from exporter.gguf.reader import GgufFile
    from exporter.sources import packaged_smollm2_gguf

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(packaged_smollm2_gguf().read_bytes()[: 1 << 20])
    proc = run_cli("llm", "--model", str(truncated), "--out", str(tmp_path / "out"), "--no-mlc", check=False)
    assert proc.returncode == 2 and "not a readable GGUF file" in proc.stderr and "fix:" in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(CorruptCheckpointError, match="not a readable GGUF file"):
        GgufFile(garbage)


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(tmp_path / "gpt2")
    proc = run_cli("llm", "--model", str(tmp_path / "gpt2"), "--out", str(tmp_path / "out"), "--no-mlc", check=False)
    assert proc.returncode == 2 and "'gpt2'" in proc.stderr and "llama, qwen2" in proc.stderr


# ---------------------------------------------------------------- the real SmolLM2 (Q4_1 GGUF)


def _matmulnbits_weight(model: onnx.ModelProto, module: str) -> np.ndarray:
    """W [N, K] rebuilt from the q4 file's MatMulNBits parts + block minimums, as onnxruntime defines them."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and node.input[1].startswith(f"{module}.part"):
            b, scales, zp = (inits[name] for name in node.input[1:4])
            n, k_blocks, _ = b.shape
            codes = np.stack([b & 15, b >> 4], axis=-1).reshape(n, k_blocks, 32).astype(np.float32)
            zps = np.stack([zp & 15, zp >> 4], axis=-1).reshape(n, -1)[:, :k_blocks].astype(np.float32)
            total = total + ((codes - zps[..., None]) * scales.reshape(n, k_blocks, 1)).reshape(n, -1)
    assert not isinstance(total, float), f"no MatMulNBits parts found for {module}"
    mins = inits.get(f"{module}.block_mins")
    return total + (0 if mins is None else np.repeat(mins.T, 32, axis=1))


@pytest.mark.slow
def test_smollm2_carries_the_gguf_blocks_and_meets_the_fidelity_targets(shared_artifacts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exporter.sources import packaged_smollm2_gguf

    root = shared_artifacts.llm(SMOLLM2)
    entry = load_manifest(root).get(SMOLLM2)
    report = json.loads((root / entry.report).read_text())
    assert entry.trained and entry.llm.num_layers == 30 and 2 in entry.llm.eos_token_ids
    for runtime, variant in entry.defaults.items():  # the targets, as the exporter measured them
        numbers = report["variants"][variant]
        assert numbers["forced_agreement"] >= 0.95 and abs(numbers["nll_rel_diff"]) <= 0.03, (runtime, numbers)
        assert min(numbers["greedy_match"]) >= 32, (runtime, numbers)
    assert report["variants"]["q4"]["how"].startswith("GGUF blocks carried over exactly")

    # Recomputed here: transformers' own GGUF load is the reference.
    gguf = packaged_smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    q4 = onnx.load(str(root / entry.variants["q4"].files["model"]))
    for module in (
        "model.layers.0.self_attn.q_proj",
        "model.layers.29.self_attn.k_proj",
        "model.layers.7.mlp.down_proj",
        "lm_head",
    ):  # RoPE-permuted rows, K=1536, Q8_0 head
        torch_weight = model.get_submodule(module).weight.detach().numpy()
        assert np.abs(_matmulnbits_weight(q4, module) - torch_weight).max() <= 1e-6 * np.abs(torch_weight).max()

    tokenizer = AutoTokenizer.from_pretrained(root / SMOLLM2)
    prompt = list(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True
        )
    )
    with torch.inference_mode():  # PyTorch greedy, 32 tokens, EOS not special: full passes, no cache
        sequence = list(prompt)
        for _ in range(32):
            sequence.append(int(model(torch.tensor([sequence])).logits[0, -1].argmax()))
        torch_logits = model(torch.tensor([sequence])).logits[0].double()
    continuation = sequence[len(prompt) :]
    torch_nll = torch.nn.functional.cross_entropy(torch_logits[len(prompt) - 1 : -1], torch.tensor(continuation)).item()
    for variant in sorted(set(entry.defaults.values())):
        session = _session(root / entry.variants[variant].files["model"])
        logits = session.run(["logits"], _feed(session, sequence, 0, None))[0][0].astype(np.float64)
        forced = logits[len(prompt) - 1 : -1]
        assert (forced.argmax(-1) == np.array(continuation)).mean() >= 0.95
        nll = torch.nn.functional.cross_entropy(torch.from_numpy(forced), torch.tensor(continuation)).item()
        assert abs(nll - torch_nll) <= 0.03 * torch_nll
        names, past, tokens = [o.name for o in session.get_outputs()], None, []
        ids, pos = prompt, 0
        for _ in range(32):  # greedy with the KV cache
            out = dict(zip(names, session.run(None, _feed(session, ids, pos, past)), strict=True))
            past = {n.replace("present.", "past_key_values."): v for n, v in out.items() if n.startswith("present.")}
            pos += len(ids)
            ids = [int(out["logits"][0, -1].argmax())]
            tokens += ids
        assert tokens == continuation, variant

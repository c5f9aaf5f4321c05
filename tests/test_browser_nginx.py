"""Issue #12: the app end to end behind Debian's nginx running `python -m server --print-nginx-config`
(unprivileged, loopback): classify with a tiny CLIP and chat with a tiny Llama, in Chromium.

The same HTTP checks run against nginx in test_http_conformance.py; this is the browser's view:
COOP/COEP (multi-threaded WASM needs them), MIME types, Range downloads, the manifest at /api/models.
"""

from __future__ import annotations

import pytest

from browser_support import ConsoleLog, screenshot
from server_support import live_nginx

CLIP = "tiny-random-clip"
TINY_LLM = "tiny-random-llama"

E2E_JS = """async ([clip, llm]) => {
  const e = window.engine;
  const png = document.createElement("canvas").toDataURL();
  const load = await e.load({ clip }, { runtime: "wasm" });
  const ranked = await e.classify({ images: [png], labels: ["a cat", "a dog", "a car"] });
  const chat = await e.loadChat(llm, { runtime: "wasm" });
  const reply = await e.chat.completions.create(
    { messages: [{ role: "user", content: "Hello" }], max_tokens: 5, temperature: 0 });
  return { isolated: self.crossOriginIsolated, runtime: load.runtime, ranked,
           chatRuntime: chat.runtime, tokens: reply.choices[0].token_ids, usage: reply.usage };
}"""


@pytest.mark.browser
def test_classify_and_chat_through_nginx(browser, shared_artifacts, web_dist) -> None:
    shared_artifacts.clip(CLIP)
    shared_artifacts.llm(TINY_LLM)
    with live_nginx(shared_artifacts.root, web_dist, models=[CLIP, TINY_LLM]) as (host, port):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(240_000)
        log = ConsoleLog()
        log.attach(page)
        try:
            page.goto(f"http://{host}:{port}/?autoload=0")
            page.evaluate("window.lumenReady")
            result = page.evaluate(E2E_JS, [CLIP, TINY_LLM])
            log.assert_clean()
        finally:
            screenshot(page, "nginx_e2e")
            context.close()
    print(f"\nnginx end to end: {result}")
    assert result["isolated"] is True  # COOP + COEP from nginx: SharedArrayBuffer, threaded WASM
    assert result["runtime"] == "wasm" and result["chatRuntime"] == "wasm"
    scores = [s["score"] for s in result["ranked"][0]]
    assert sorted(s["label"] for s in result["ranked"][0]) == ["a car", "a cat", "a dog"]
    assert abs(sum(scores) - 1) < 1e-4  # CLIP: softmax over the labels
    assert 1 <= len(result["tokens"]) <= 5 and result["usage"]["completion_tokens"] == len(result["tokens"])

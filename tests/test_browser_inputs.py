"""Issue #12: every bad input to window.engine is a named InvalidRequestError with a fix, on one page.

Each case must reject promptly (no hang) with that class, a message naming the field, and a fix;
a valid request on the same page still works afterwards (the checks reject only what is wrong).
"""

from __future__ import annotations

import pytest

from browser_support import ConsoleLog, screenshot
from server_support import live_server

CLIP = "tiny-random-clip"
TINY_LLM = "tiny-random-llama"

BAD_INPUTS_JS = """async () => {
  const e = window.engine;
  const png = document.createElement("canvas").toDataURL();
  const labels = ["a cat", "a dog"];
  const cases = {
    "topK -1": () => e.classify({ images: [png], labels, topK: -1 }),
    "topK 0": () => e.classify({ images: [png], labels, topK: 0 }),
    "topK NaN": () => e.classify({ images: [png], labels, topK: NaN }),
    "topK 1.5": () => e.classify({ images: [png], labels, topK: 1.5 }),
    "topK '2'": () => e.classify({ images: [png], labels, topK: "2" }),
    "topK Infinity": () => e.classify({ images: [png], labels, topK: Infinity }),
    "labels []": () => e.classify({ images: [png], labels: [] }),
    "labels [1, 2]": () => e.classify({ images: [png], labels: [1, 2] }),
    "labels with an empty string": () => e.classify({ images: [png], labels: ["a cat", " "] }),
    "labels not an array": () => e.classify({ images: [png], labels: "a cat" }),
    "images not an array": () => e.classify({ images: png, labels }),
    "images []": () => e.classify({ images: [], labels }),
    "images [42]": () => e.classify({ images: [42], labels }),
    "images [null]": () => e.classify({ images: [null], labels }),
    "template 7": () => e.classify({ images: [png], labels, template: 7 }),
    "no request": () => e.classify(undefined),
    "bad base64 characters": () => e.classify({ images: ["data:image/png;base64,@@@@"], labels }),
    "base64 of a bad length": () => e.classify({ images: ["data:image/png;base64,iVBORw0KGgo"], labels }),
    "data URL without a comma": () => e.embedImages(["data:image/png;base64"]),
    "data URL with no data": () => e.embedImages(["data:image/png;base64,"]),
    "data URL of text": () => e.embedImages(["data:text/plain;base64,aGVsbG8="]),
    "embedImages not an array": () => e.embedImages("x.png"),
    "embedTexts []": () => e.embedTexts([]),
    "embedTexts [null]": () => e.embedTexts([null]),
    "pixelValues [{}]": () => e.pixelValues([{}]),
    "prompt one token too long": () => e.chat.completions.create(
      { messages: [{ role: "user", content: "hello ".repeat(2100) }], max_tokens: 4 }),
  };
  const out = {};
  for (const [name, call] of Object.entries(cases)) {
    const started = performance.now();
    const settled = await Promise.race([
      call().then(() => ({ ok: true }), (err) => ({ name: err.name, message: err.message, fix: err.fix })),
      new Promise((resolve) => setTimeout(() => resolve({ hung: true }), 20000)),
    ]);
    out[name] = { ...settled, ms: performance.now() - started };
  }
  const control = await e.classify({ images: [png], labels, topK: 1 });
  return { out, control };
}"""

# case -> a word the message must contain (the field it names)
FIELD = {
    "topK": "topK",
    "labels": "labels",
    "images": "images",
    "template": "template",
    "no request": "classify",
    "bad base64": "base64",
    "base64 of": "base64",
    "data URL without": "data: URL",
    "data URL with no": "no data",
    "data URL of text": "text/plain",
    "embedImages": "images",
    "embedTexts": "texts",
    "pixelValues": "images[0]",
    "prompt": "at most 2047",
}


@pytest.mark.browser
def test_bad_engine_inputs_are_named_invalid_request_errors(browser, shared_artifacts, web_dist) -> None:
    shared_artifacts.clip(CLIP)
    shared_artifacts.llm(TINY_LLM)
    with live_server(shared_artifacts.root, web_dist) as (host, port):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(240_000)
        log = ConsoleLog()
        log.attach(page)
        try:
            page.goto(f"http://{host}:{port}/?autoload=0")
            page.evaluate("window.lumenReady")
            page.evaluate(
                "async ([clip, llm]) => { await window.engine.load({ clip }, { runtime: 'wasm' });"
                " await window.engine.loadChat(llm, { runtime: 'wasm' }); }",
                [CLIP, TINY_LLM],
            )
            result = page.evaluate(BAD_INPUTS_JS)
            log.assert_clean()
        finally:
            screenshot(page, "engine_bad_inputs")
            context.close()
    out = result["out"]
    print(f"\n{len(out)} bad inputs, slowest rejection {max(r['ms'] for r in out.values()):.0f} ms")
    for case, got in out.items():
        assert got.get("name") == "InvalidRequestError", (case, got)
        assert got["fix"] and len(got["fix"]) > 10, (case, got)
        field = next(word for prefix, word in FIELD.items() if case.startswith(prefix))
        assert field in got["message"], (case, got["message"])
    assert [row[0]["label"] for row in result["control"]] in (["a cat"], ["a dog"])
    assert len(result["control"][0]) == 1  # topK 1

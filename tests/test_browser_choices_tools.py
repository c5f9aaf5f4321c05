"""`n` > 1 and tool_choice "auto" (web/src/engine/llm/{choices,tools}.ts) on the tiny-random LLM.

* In Node, on the same .wasm the page loads: the tool_choice "auto" grammar (an xgrammar structural
  tag) allows a plain-text reply, allows text followed by one tagged call that fits the tool's schema
  and then only the end, and forbids a call to a tool that does not exist.
* In Chromium (WASM): n replies, each its own seed (the same as n separate requests with seed,
  seed + 1, ...), identical at temperature 0, the 2nd and later reusing the prompt's KV cache;
  tool_choice "auto" answers in the OpenAI shape; the named errors for what stays unsupported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import CREATE_JS, ENGINE, ERROR_JS, TINY_LLM, run_engine_script, screenshot
from server_support import live_server
from test_browser_chat import manifest_entry, open_engine_page

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"],
        },
    },
}
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def tiny_root(shared_artifacts) -> Path:
    shared_artifacts.llm(TINY_LLM)
    return shared_artifacts.root


# ---------------------------------------------------------------- the "auto" grammar, in Node


def walk_auto_grammar(root: Path, traces: dict[str, str]) -> dict:
    """For each text: the first token the auto grammar forbids (or -1), and what it allows after the last."""
    from tokenizers import Tokenizer

    entry = manifest_entry(root, TINY_LLM)
    tokenizer = Tokenizer.from_file(str(root / TINY_LLM / "tokenizer.json"))
    ids = {name: tokenizer.encode(text, add_special_tokens=False).ids for name, text in traces.items()}
    return run_engine_script(f"""
globalThis.location ??= {{ href: "file:///" }}; // the UMD bundle asks for a script URL when it starts
import {{ readFileSync }} from "node:fs";
import {{ GrammarCompilers, encodedVocab }} from "{ENGINE}/llm/grammar.ts";
import {{ toolPlan }} from "{ENGINE}/llm/tools.ts";
const vocabSize = {entry["llm"]["vocab_size"]};
const stopIds = {json.dumps(entry["llm"]["eos_token_ids"])};
const tokenizer = JSON.parse(readFileSync({json.dumps(str(root / TINY_LLM / "tokenizer.json"))}, "utf8"));
const compilers = new GrammarCompilers(encodedVocab(tokenizer, vocabSize), stopIds);
const plan = toolPlan({{ tools: [{json.dumps(WEATHER)}], tool_choice: "auto" }}, {json.dumps(MESSAGES)}, (m) => new Error(m));
const out = {{}};
for (const [name, trace] of Object.entries({json.dumps(ids)})) {{
  const decoder = await compilers.matcher(plan.grammar);
  let forbidden = -1;
  for (const [step, token] of trace.entries()) {{
    const masked = await decoder.mask(new Float32Array(vocabSize));
    if (masked[token] !== 0) {{ forbidden = step; break; }}
    decoder.accept(token);
  }}
  const masked = await decoder.mask(new Float32Array(vocabSize));
  const allowed = [];
  masked.forEach((v, i) => {{ if (v === 0) allowed.push(i); }});
  out[name] = {{ forbidden, steps: trace.length, allowedAfter: allowed.length, onlyStops: allowed.every((i) => stopIds.includes(i)),
                 stopAllowed: stopIds.some((i) => allowed.includes(i)) }};
  decoder.dispose();
}}
print({{ grammar: plan.grammar.kind, out }});
""")


@pytest.mark.browser
def test_auto_tool_grammar_allows_text_or_one_valid_call(tiny_root):
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    got = walk_auto_grammar(
        tiny_root,
        {
            "text": "It is sunny in Paris today.",
            "call": f"Let me check. <tool_call>{call}</tool_call>",
            "bare_call": f"<tool_call>{call}</tool_call>",
            "unknown_tool": '<tool_call>{"name": "get_time"',
            "bad_argument": '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"',
        },
    )
    assert got["grammar"] == "structural_tag"
    out = got["out"]
    # Free text: every token allowed, and the reply may end there.
    assert out["text"]["forbidden"] == -1 and out["text"]["stopAllowed"]
    assert out["text"]["allowedAfter"] > 1000  # still free text
    # A call, with or without text before it: allowed; after </tool_call> only the end.
    for name in ("call", "bare_call"):
        assert out[name]["forbidden"] == -1, out[name]
        assert out[name]["onlyStops"] and out[name]["stopAllowed"], out[name]
    # Inside the tag the schema rules: an unknown tool or an argument outside the enum is masked.
    assert 0 < out["unknown_tool"]["forbidden"] < out["unknown_tool"]["steps"]
    assert 0 < out["bad_argument"]["forbidden"] < out["bad_argument"]["steps"]


# ---------------------------------------------------------------- n and tools in Chromium


@pytest.fixture(scope="module")
def tiny_page(browser, tiny_root: Path, web_dist: Path) -> Iterator[tuple[object, object]]:
    with live_server(tiny_root, web_dist) as (host, port):
        context, page, log = open_engine_page(browser, f"http://{host}:{port}")
        page.evaluate("(id) => window.engine.loadChat(id, { runtime: 'wasm' })", TINY_LLM)
        try:
            yield page, log
        finally:
            screenshot(page, "chat_choices_tools_tiny")
            context.close()


@pytest.mark.browser
def test_n_replies_are_independent_samples_and_reuse_the_prompt_cache(tiny_page):
    page, log = tiny_page
    base = {"messages": MESSAGES, "max_tokens": 6}
    greedy = page.evaluate(CREATE_JS, {**base, "n": 3, "temperature": 0, "cache_prompt": False})
    assert [c["index"] for c in greedy["choices"]] == [0, 1, 2]
    assert len({json.dumps(c["token_ids"]) for c in greedy["choices"]}) == 1  # temperature 0: the same reply
    usage = greedy["usage"]
    prompt = len(greedy["prompt_token_ids"])
    assert usage["prompt_tokens"] == prompt
    assert usage["completion_tokens"] == sum(len(c["token_ids"]) for c in greedy["choices"])
    assert usage["total_tokens"] == prompt + usage["completion_tokens"]
    # cache_prompt: false applies to every reply: all three prefill the whole prompt.
    assert usage["extra"]["prefill_tokens"] == 3 * prompt and usage["extra"]["prefill_tokens_saved"] == 0

    sampled = page.evaluate(CREATE_JS, {**base, "n": 3, "temperature": 1.5, "seed": 11})
    # The 2nd and 3rd replies reuse all of the prompt but its last token.
    assert sampled["usage"]["extra"]["prefill_tokens_saved"] >= 2 * (prompt - 1)
    ids = [c["token_ids"] for c in sampled["choices"]]
    assert len({json.dumps(i) for i in ids}) > 1  # samples, not copies
    for index, tokens in enumerate(ids):  # reply i is what seed 11 + i gives alone
        alone = page.evaluate(CREATE_JS, {**base, "temperature": 1.5, "seed": 11 + index})
        assert alone["choices"][0]["token_ids"] == tokens
    log.assert_clean()


@pytest.mark.browser
def test_tool_choice_auto_answers_in_the_openai_shape(tiny_page):
    page, log = tiny_page
    got = page.evaluate(
        CREATE_JS, {"messages": MESSAGES, "tools": [WEATHER], "tool_choice": "auto", "max_tokens": 12, "temperature": 0}
    )
    choice = got["choices"][0]
    message = choice["message"]
    # A random model writes text (a call would need "<tool_call>" first); either way the shape is OpenAI's.
    if message.get("tool_calls"):
        assert choice["finish_reason"] == "tool_calls"
        call = message["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"])["city"] in ("Paris", "Rome")
    else:
        assert isinstance(message["content"], str) and choice["finish_reason"] in ("stop", "length")
    assert got["usage"]["extra"]["grammar_mask_ms"] >= 0  # the structural tag was enforced step by step
    log.assert_clean()


@pytest.mark.browser
def test_what_stays_unsupported_is_a_named_error(tiny_page):
    page, _ = tiny_page
    cases = {
        "n_too_many": ({"n": 9}, "n must be an integer in [1, 8], got 9"),
        "n_zero": ({"n": 0}, "n must be an integer in [1, 8], got 0"),
        "n_streamed": ({"n": 2, "stream": True}, "n > 1 cannot be streamed here"),
        "auto_streamed": ({"tools": [WEATHER], "tool_choice": "auto", "stream": True}, "tools cannot be streamed here"),
        "cache_prompt": ({"cache_prompt": "no"}, 'cache_prompt must be a boolean, got "no"'),
    }
    for name, (extra, message) in cases.items():
        err = page.evaluate(ERROR_JS, {"messages": MESSAGES, "max_tokens": 2, **extra})
        assert err is not None, name
        assert err["name"] == "InvalidRequestError" and err["message"] == message and err["fix"] is not None, (
            name,
            err,
        )

"""Structured output (response_format) in the browser engine: web/src/engine/llm/{response_format,grammar}.ts.

* Masks: xgrammar's WASM build (the engine's grammar.ts, run in Node on the same .wasm the page
  loads) gives bit-for-bit the masks Python xgrammar gives for SmolLM2's vocabulary, for the same
  schema / EBNF and the same forced token trace (reference/constrained.py).
* Tokens: greedy constrained decoding of SmolLM2 in Chromium (WASM) equals a Python onnxruntime
  loop with Python xgrammar masks, first 64 tokens; the reply is valid by construction.
* Each response_format shape, finish_reason "length", mask time in usage, and the named errors.

LUMEN_SMOLLM2_ARTIFACTS=<folder> reuses a folder where `python -m exporter llm --model smollm2` ran
(a development shortcut: the export takes minutes); by default the session exports it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from browser_support import CREATE_JS, ENGINE, ERROR_JS, RESULTS, fp32_compute_copy, run_engine_script, screenshot
from server_support import live_server
from test_browser_chat import SMOLLM2, default_file, manifest_entry, open_engine_page

PARITY_TOKENS = 64
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pet": {"type": "string", "enum": ["cat", "dog", "none"]},
    },
    "required": ["name", "age", "pet"],
    "additionalProperties": False,
}
PERSON_PROMPT = [{"role": "user", "content": "Describe a person called Ann in JSON."}]
YES_NO = 'root ::= ("yes" | "no") " because " [a-z ]{1,40} "."'
# A trace for the mask test: a valid reply, tokenized as the model would write it.
PERSON_TEXT = '{"name": "Ann Lee", "age": 34, "pet": "cat"}'


@pytest.fixture(scope="module")
def chat_root(shared_artifacts) -> Path:
    reuse = os.environ.get("LUMEN_SMOLLM2_ARTIFACTS")
    if reuse:
        return Path(reuse)
    shared_artifacts.llm(SMOLLM2)
    return shared_artifacts.root


def stop_ids(root: Path) -> list[int]:
    ids = set(manifest_entry(root, SMOLLM2)["llm"]["eos_token_ids"])
    config = root / SMOLLM2 / "generation_config.json"
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token_id")
        ids |= set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    return sorted(ids)


# ---------------------------------------------------------------- masks: WASM xgrammar vs Python xgrammar


def browser_masks(root: Path, spec: dict, trace: list[int]) -> list[bytes]:
    """The engine's grammar.ts in Node: the bitmask before each forced token and after the last."""
    vocab_size = manifest_entry(root, SMOLLM2)["llm"]["vocab_size"]
    out = run_engine_script(f"""
globalThis.location ??= {{ href: "file:///" }}; // the UMD bundle asks for a script URL when it starts
import {{ readFileSync }} from "node:fs";
import {{ GrammarCompilers, encodedVocab }} from "{ENGINE}/llm/grammar.ts";
const tokenizer = JSON.parse(readFileSync({json.dumps(str(root / SMOLLM2 / "tokenizer.json"))}, "utf8"));
const compilers = new GrammarCompilers(encodedVocab(tokenizer, {vocab_size}), {json.dumps(stop_ids(root))});
const decoder = await compilers.matcher({json.dumps(spec)});
const masks = [];
// The engine's own masking on zero logits: allowed ids stay 0, the rest become -Infinity.
const allowedBits = async () => {{
  const masked = await decoder.mask(new Float32Array({vocab_size}));
  const bits = new Uint8Array(Math.ceil({vocab_size} / 8));
  masked.forEach((v, i) => {{ if (v === 0) bits[i >> 3] |= 1 << (i & 7); }});
  return Buffer.from(bits).toString("base64");
}};
for (const token of {json.dumps(trace)}) {{
  masks.push(await allowedBits());
  decoder.accept(token);
}}
masks.push(await allowedBits());
print(masks);
""")
    return [base64.b64decode(m) for m in out]


def allowed_ids(bitmask: bytes, vocab_size: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(bitmask, np.uint8), bitorder="little")[:vocab_size]
    return np.nonzero(bits)[0]


@pytest.mark.browser
@pytest.mark.parametrize(
    "spec, text",
    [
        ({"kind": "json_schema", "schema": json.dumps(PERSON_SCHEMA)}, PERSON_TEXT),
        ({"kind": "any_json"}, '{"a": [1, 2.5, true, null], "b": {"c": "d e"}}'),
        ({"kind": "grammar", "ebnf": YES_NO}, "yes because it is raining."),
    ],
    ids=["json_schema", "any_json", "ebnf"],
)
def test_wasm_xgrammar_masks_equal_python_xgrammar_for_smollm2(chat_root, spec, text):
    from tokenizers import Tokenizer

    from reference.constrained import Grammars, encoded_vocab, masks_along

    vocab_size = manifest_entry(chat_root, SMOLLM2)["llm"]["vocab_size"]
    trace = Tokenizer.from_file(str(chat_root / SMOLLM2 / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    grammars = Grammars(encoded_vocab(chat_root / SMOLLM2 / "tokenizer.json", vocab_size), stop_ids(chat_root))
    python = masks_along(grammars, spec, trace)
    browser = [allowed_ids(m, vocab_size).tolist() for m in browser_masks(chat_root, spec, trace)]
    assert len(browser) == len(python) == len(trace) + 1
    for step, (b, p) in enumerate(zip(browser, python, strict=True)):
        assert b == p, f"step {step}: {len(b)} vs {len(p)} allowed; only browser {set(b) - set(p)!s:.200}"
    # The masks constrain: never everything, and at the end only the stop tokens.
    assert all(0 < len(m) < vocab_size for m in python)
    assert set(python[-1]) <= set(stop_ids(chat_root))


# ---------------------------------------------------------------- the API in Chromium on SmolLM2 (WASM)


@pytest.fixture(scope="module")
def smollm2_page(browser, chat_root: Path, web_dist: Path) -> Iterator[tuple[object, object]]:
    with live_server(chat_root, web_dist) as (host, port):
        context, page, log = open_engine_page(browser, f"http://{host}:{port}")
        page.evaluate("(id) => window.engine.loadChat(id, { runtime: 'wasm' })", SMOLLM2)
        try:
            yield page, log
        finally:
            screenshot(page, "chat_structured_smollm2")
            context.close()


def check_person(value: dict) -> None:
    assert set(value) == {"name", "age", "pet"}
    assert isinstance(value["name"], str) and 1 <= len(value["name"]) <= 20
    assert isinstance(value["age"], int) and 0 <= value["age"] <= 120
    assert value["pet"] in ("cat", "dog", "none")


@pytest.mark.browser
@pytest.mark.slow
def test_constrained_greedy_equals_python_onnxruntime_with_python_xgrammar(smollm2_page, chat_root, tmp_path):
    page, log = smollm2_page
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
    }
    got = page.evaluate(
        CREATE_JS,
        {"messages": PERSON_PROMPT, "max_tokens": PARITY_TOKENS, "temperature": 0, "response_format": response_format},
    )
    choice = got["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    check_person(json.loads(choice["message"]["content"]))
    extra = got["usage"]["extra"]
    assert extra["grammar_mask_ms"] > 0 and 0 < extra["grammar_mask_ms_per_token"] <= extra["grammar_mask_ms"]

    from reference.constrained import Grammars, constrained_greedy, encoded_vocab
    from reference.llm import ChatLLM
    from runtime.onnx_decoder import OnnxDecoder

    llm = ChatLLM(chat_root, SMOLLM2)
    _, model_file = default_file(chat_root, SMOLLM2, "wasm")
    llm.decoder = OnnxDecoder(fp32_compute_copy(model_file, tmp_path))  # WASM computes 4-bit weights in fp32
    vocab_size = manifest_entry(chat_root, SMOLLM2)["llm"]["vocab_size"]
    grammars = Grammars(encoded_vocab(chat_root / SMOLLM2 / "tokenizer.json", vocab_size), stop_ids(chat_root))
    spec = {"kind": "json_schema", "schema": json.dumps(PERSON_SCHEMA, separators=(",", ":"))}
    native = constrained_greedy(llm, grammars, PERSON_PROMPT, spec, PARITY_TOKENS)
    browser_ids = choice["token_ids"][:-1]  # the browser lists the stop token too
    assert browser_ids == native.token_ids[:PARITY_TOKENS] and native.finish_reason == "stop"
    assert choice["message"]["content"] == native.text

    # Cost, recorded (not asserted: this machine is shared, timings are noise): the same number of
    # tokens free vs constrained, and the mask time per token.
    n = len(choice["token_ids"])
    free = page.evaluate(CREATE_JS, {"messages": PERSON_PROMPT, "max_tokens": n, "temperature": 0})["usage"]["extra"]
    cost = {
        "tokens": n,
        "constrained_decode_tokens_per_s": extra["decode_tokens_per_s"],
        "free_decode_tokens_per_s": free["decode_tokens_per_s"],
        "grammar_mask_ms_per_token": extra["grammar_mask_ms_per_token"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "structured_cost.json").write_text(json.dumps(cost, indent=2) + "\n")
    log.assert_clean()


@pytest.mark.browser
@pytest.mark.slow
def test_each_response_format_is_followed_streamed_or_not(smollm2_page):
    page, log = smollm2_page
    base = {"messages": PERSON_PROMPT, "max_tokens": 48, "temperature": 0}
    short = [{"role": "user", "content": 'Answer in JSON: {"city": ...}. What is the capital of France?'}]
    obj = page.evaluate(CREATE_JS, {**base, "messages": short, "response_format": {"type": "json_object"}})["choices"][
        0
    ]
    assert obj["finish_reason"] == "stop", obj
    assert isinstance(json.loads(obj["message"]["content"]), dict)

    yes_no = page.evaluate(
        CREATE_JS,
        {
            **base,
            "messages": [{"role": "user", "content": "Is the sky blue?"}],
            "response_format": {"type": "grammar", "grammar": YES_NO},
        },
    )["choices"][0]
    import re

    assert re.fullmatch(r"(yes|no) because [a-z ]{1,40}\.", yes_no["message"]["content"]), yes_no

    # Sampled (seeded), streamed: still valid; the same seed gives the same text unstreamed.
    sampled = {
        **base,
        "temperature": 1.0,
        "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}},
    }
    streamed = page.evaluate(
        """async (request) => {
        let text = "";
        let last = null;
        for await (const chunk of await window.engine.chat.completions.create({ ...request, stream: true })) {
          text += chunk.choices[0].delta.content ?? "";
          last = chunk;
        }
        return { text, finish: last.choices[0].finish_reason };
      }""",
        sampled,
    )
    assert streamed["finish"] == "stop"
    check_person(json.loads(streamed["text"]))
    assert page.evaluate(CREATE_JS, sampled)["choices"][0]["message"]["content"] == streamed["text"]

    # "text" is free text: no grammar, no mask time.
    free = page.evaluate(CREATE_JS, {**base, "max_tokens": 8, "response_format": {"type": "text"}})
    assert "grammar_mask_ms" not in free["usage"]["extra"]
    log.assert_clean()


@pytest.mark.browser
@pytest.mark.slow
def test_max_tokens_cut_says_length(smollm2_page):
    page, log = smollm2_page
    got = page.evaluate(
        CREATE_JS,
        {
            "messages": PERSON_PROMPT,
            "max_tokens": 5,
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}},
        },
    )["choices"][0]
    assert got["finish_reason"] == "length" and len(got["token_ids"]) == 5
    assert got["message"]["content"].startswith("{")
    log.assert_clean()


BAD_FORMATS = [
    ({"type": "xml"}, "response_format.type must be one of"),
    ("json", "response_format must be an object"),
    ({"type": "json_schema"}, "response_format.json_schema must be an object"),
    ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}, "must be a JSON Schema object"),
    ({"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}}, "strict must be a boolean"),
    ({"type": "grammar", "grammar": ""}, "response_format.grammar must be a non-empty EBNF string"),
]


@pytest.mark.browser
@pytest.mark.slow
def test_bad_response_formats_get_named_errors_and_the_engine_recovers(smollm2_page):
    page, log = smollm2_page
    base = {"messages": PERSON_PROMPT, "max_tokens": 8, "temperature": 0}
    for response_format, message in BAD_FORMATS:
        err = page.evaluate(ERROR_JS, {**base, "response_format": response_format})
        assert err and err["name"] == "InvalidRequestError" and message in err["message"], (response_format, err)

    # Compiled in the worker: xgrammar's own reason comes back, with a fix.
    ebnf = page.evaluate(ERROR_JS, {**base, "response_format": {"type": "grammar", "grammar": "root ::= "}})
    assert ebnf["name"] == "InvalidRequestError" and "could not be compiled" in ebnf["message"]
    assert "EBNF" in ebnf["message"] and "root" in ebnf["fix"]
    ref = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    schema = page.evaluate(
        ERROR_JS, {**base, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": ref}}}
    )
    assert schema["name"] == "InvalidRequestError" and "missing" in schema["message"], schema

    # After xgrammar aborted twice, a valid request still works.
    ok = page.evaluate(CREATE_JS, {**base, "max_tokens": 32, "response_format": {"type": "json_object"}})
    assert ok["choices"][0]["finish_reason"] in ("stop", "length")
    log.assert_clean()  # xgrammar's abort messages became the errors above, not console noise


# ---------------------------------------------------------------- FuDD's structured prompt: Python and TypeScript agree


def test_fudd_schema_and_structured_parse_are_the_same_in_python_and_typescript():
    from reference.fudd_prompt import FORMAT_CUT, FuddPrompt

    prompt = FuddPrompt.load()
    labels = ["bombay", 'maine "coon"']
    answers = [
        (
            '[{"bombay": "black fur", "maine \\"coon\\"": "long shaggy fur"}, {"bombay": "black fur", '
            '"maine \\"coon\\"": "long shaggy fur"}, {"bombay": "yellow skin", "maine \\"coon\\"": "tufted ears"}]'
        ),
        '[{"bombay": "copper eyes", "maine \\"coon\\"": "tuft',  # cut by max_new_tokens
    ]
    contract_file = Path(__file__).resolve().parent.parent / "contract" / "fudd_prompt.json"
    got = run_engine_script(f"""
import {{ readFileSync }} from "node:fs";
import {{ FuddPrompt }} from "{ENGINE}/fudd/fudd.ts";
const prompt = new FuddPrompt(JSON.parse(readFileSync({json.dumps(str(contract_file))}, "utf8")));
const [a, b] = {json.dumps(labels)};
print({{
  schema: prompt.schema(a, b, 3),
  messages: prompt.structuredMessages(a, b, 3),
  parsed: {json.dumps(answers)}.map((t) => prompt.parseStructured(t, a, b, 3)),
}});
""")
    a, b = labels
    assert got["schema"] == prompt.schema(a, b, 3)
    schema = json.loads(got["schema"])
    assert schema["minItems"] == schema["maxItems"] == 3 and schema["items"]["required"] == [a, b]
    assert got["messages"] == prompt.structured_messages(a, b, 3)
    for answer, parsed in zip(answers, got["parsed"], strict=True):
        expected = prompt.parse_structured(answer, a, b, 3)
        assert parsed["pairs"] == [list(p) for p in expected.pairs]
        assert parsed["rejected"] == [list(r) for r in expected.rejected]
    first, cut = (prompt.parse_structured(t, a, b, 3) for t in answers)
    assert first.pairs == [("black fur", "long shaggy fur")]  # a repeat and an example copy are content rejections
    assert not first.format_failure and cut.format_failure and cut.rejected[0][1] == FORMAT_CUT


# ---------------------------------------------------------------- request fields: unsupported ones are named


def test_unsupported_openai_fields_are_named_with_what_is_supported():
    cases = {
        "tools": {"functions": [{"name": "f"}]},  # the pre-tools spelling
        "n2_and_user": {"n": 2, "user": "me"},
        "penalty_range": {"frequency_penalty": 3},
        "bias_key": {"logit_bias": {"x": 1}},
        "bias_range": {"logit_bias": {"5": -101}},
        "stop_too_many": {"stop": ["a", "b", "c", "d", "e"]},
        "stop_empty": {"stop": [""]},
        "unknown": {"temprature": 0.5},
        "bad_stream_options": {"stream_options": {"include_usage": "yes"}},
        "no_ops": {"n": 1, "stop": [], "presence_penalty": 0, "logit_bias": {}, "tools": [], "tool_choice": "none"},
        "adjust": {"logit_bias": {"7": -100, "9": 2.5}, "presence_penalty": 0.5, "frequency_penalty": -1},
        "stream_options": {"stream_options": {"include_usage": True}},
    }
    got = run_engine_script(f"""
import {{ normalizeRequest }} from "{ENGINE}/llm/chat.ts";
const invalid = (message, fix) => Object.assign(new Error(message), {{ fix }});
const out = {{}};
for (const [name, extra] of Object.entries({json.dumps(cases)})) {{
  try {{
    const params = normalizeRequest({{ messages: [{{ role: "user", content: "hi" }}], seed: 1, ...extra }}, invalid);
    out[name] = {{ ok: true, grammar: params.grammar, adjust: params.adjust }};
  }} catch (e) {{
    out[name] = {{ ok: false, message: e.message, fix: e.fix ?? null }};
  }}
}}
print(out);
""")
    assert got["tools"]["message"] == "unsupported request field: functions"
    assert "supported: messages, stream" in got["tools"]["fix"] and "response_format" in got["tools"]["fix"]
    assert "cache_prompt" in got["tools"]["fix"] and ", n" in got["tools"]["fix"]
    assert got["n2_and_user"]["message"] == "unsupported request field: user"  # n is supported
    assert "frequency_penalty must be a number in [-2, 2]" in got["penalty_range"]["message"]
    assert "logit_bias keys must be token ids" in got["bias_key"]["message"]
    assert "logit_bias[5] must be a number in [-100, 100]" in got["bias_range"]["message"]
    adjust = {"logitBias": [[7, -100], [9, 2.5]], "presencePenalty": 0.5, "frequencyPenalty": -1}
    assert got["adjust"]["adjust"] == adjust
    assert "stop must be a non-empty string or a list of at most 4" in got["stop_too_many"]["message"]
    assert "stop must be" in got["stop_empty"]["message"]
    assert got["unknown"]["message"] == "unsupported request field: temprature"
    assert "stream_options must be {include_usage: boolean}" in got["bad_stream_options"]["message"]
    assert got["no_ops"]["ok"] and got["no_ops"]["grammar"] is None and got["stream_options"]["ok"]


def test_logit_bias_and_penalties_follow_openais_formula():
    logits = [1.0, 2.0, 3.0, 4.0]
    got = run_engine_script(f"""
import {{ adjustLogits }} from "{ENGINE}/llm/logit_adjust.ts";
const adjust = {{ logitBias: [[3, -100], [0, 5]], presencePenalty: 0.5, frequencyPenalty: 0.25 }};
print(Array.from(adjustLogits(Float32Array.from({logits}), adjust, new Map([[1, 2], [2, 1]]))));
""")
    # token 1 generated twice, token 2 once: logit - 0.5 - 0.25 * count
    assert got == pytest.approx([6.0, 2.0 - 0.5 - 0.5, 3.0 - 0.5 - 0.25, -96.0])


def test_stop_strings_never_show_part_of_a_stop_string_and_cut_before_the_first():
    got = run_engine_script(f"""
import {{ StopStrings }} from "{ENGINE}/llm/stop_strings.ts";
const run = (stops, pieces) => {{
  const s = new StopStrings(stops);
  const shown = pieces.map((p) => s.push(p));
  return {{ shown, tail: s.flush(), stopped: s.stopped }};
}};
print({{
  cut: run(["END", "\\n\\n"], ["Hello E", "N", "D and more"]),
  false_start: run(["END"], ["Hello E", "x", "N"]),
  earliest: run(["b", "a"], ["xxab"]),
  none: run(["zz"], ["abc", "z"]),
}});
""")
    assert got["cut"] == {"shown": ["Hello ", "", ""], "tail": "", "stopped": True}
    assert got["false_start"] == {"shown": ["Hello ", "Ex", "N"], "tail": "", "stopped": False}
    assert got["earliest"] == {"shown": ["xx"], "tail": "", "stopped": True}
    assert got["none"] == {"shown": ["abc", ""], "tail": "z", "stopped": False}


@pytest.mark.browser
@pytest.mark.slow
def test_stop_strings_end_the_reply_streamed_or_not(smollm2_page):
    page, log = smollm2_page
    base = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 24,
        "temperature": 0,
    }
    free = page.evaluate(CREATE_JS, base)["choices"][0]["message"]["content"]
    stop = "Paris" if "Paris" in free else free.split()[2]
    cut = page.evaluate(CREATE_JS, {**base, "stop": ["zzzz", stop]})["choices"][0]
    assert cut["finish_reason"] == "stop" and cut["message"]["content"] == free[: free.index(stop)]
    streamed = page.evaluate(
        """async (request) => {
        let text = "";
        for await (const c of await window.engine.chat.completions.create({ ...request, stream: true })) {
          text += c.choices[0].delta.content ?? "";
        }
        return text;
      }""",
        {**base, "stop": stop},
    )
    assert streamed == cut["message"]["content"]
    log.assert_clean()


@pytest.mark.browser
@pytest.mark.slow
def test_logit_bias_bans_the_greedy_token_and_the_runner_up_follows(smollm2_page):
    page, log = smollm2_page
    base = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    }
    first = page.evaluate(CREATE_JS, base)["choices"][0]["logprobs"]["content"][0]
    best, runner_up = (t["token_id"] for t in first["top_logprobs"])
    assert first["token_id"] == best
    banned = page.evaluate(CREATE_JS, {**base, "logit_bias": {str(best): -100}})["choices"][0]
    assert banned["token_ids"] == [runner_up]
    # Reported log-probabilities stay the model's own (before bias): the same as unbiased.
    assert banned["logprobs"]["content"][0]["logprob"] == pytest.approx(first["top_logprobs"][1]["logprob"], abs=1e-6)
    log.assert_clean()


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def test_tool_requests_build_a_schema_from_the_definitions_and_name_their_errors():
    cases = {
        "required": {"tools": [WEATHER, TIME], "tool_choice": "required"},
        "named": {"tools": [WEATHER, TIME], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
        "none": {"tools": [WEATHER], "tool_choice": "none"},
        "auto": {"tools": [WEATHER], "tool_choice": "auto"},
        "unknown": {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "stream": {"tools": [WEATHER], "stream": True},
        "bad_tool": {"tools": [{"type": "function", "function": {"name": "has space"}}]},
        "choice_without_tools": {"tool_choice": "required"},
    }
    got = run_engine_script(f"""
import {{ normalizeRequest }} from "{ENGINE}/llm/chat.ts";
const invalid = (message, fix) => Object.assign(new Error(message), {{ fix }});
const out = {{}};
for (const [name, extra] of Object.entries({json.dumps(cases)})) {{
  try {{
    const p = normalizeRequest({{ messages: [{{ role: "user", content: "hi" }}], seed: 1, ...extra }}, invalid);
    out[name] = {{ ok: true, grammar: p.grammar, toolCall: p.toolCall, messages: p.messages }};
  }} catch (e) {{
    out[name] = {{ ok: false, message: e.message, fix: e.fix ?? null }};
  }}
}}
print(out);
""")
    required = got["required"]
    assert required["toolCall"] == "json" and required["grammar"]["kind"] == "json_schema"
    schema = json.loads(required["grammar"]["schema"])
    assert [o["properties"]["name"]["const"] for o in schema["anyOf"]] == ["get_weather", "get_time"]
    assert schema["anyOf"][0]["properties"]["arguments"] == WEATHER["function"]["parameters"]
    system = required["messages"][0]
    assert (
        system["role"] == "system" and "get_weather" in system["content"] and required["messages"][1]["content"] == "hi"
    )
    named = json.loads(got["named"]["grammar"]["schema"])
    assert named["properties"]["name"] == {"const": "get_time"}
    assert got["none"]["ok"] and got["none"]["toolCall"] == "none" and got["none"]["grammar"] is None
    # "auto": text or a tagged call (tests/test_browser_choices_tools.py walks its grammar)
    assert got["auto"]["toolCall"] == "tagged" and got["auto"]["grammar"]["kind"] == "structural_tag"
    assert "<tool_call>" in got["auto"]["messages"][0]["content"]
    assert (
        '"nope", which is not among the tools' in got["unknown"]["message"] and "get_weather" in got["unknown"]["fix"]
    )
    assert "tools cannot be streamed" in got["stream"]["message"]
    assert "tools[0] must be" in got["bad_tool"]["message"]
    assert "tool_choice needs tools" in got["choice_without_tools"]["message"]


@pytest.mark.browser
@pytest.mark.slow
def test_tool_calls_come_back_in_the_openai_shape(smollm2_page):
    page, log = smollm2_page
    got = page.evaluate(
        CREATE_JS,
        {
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [WEATHER, TIME],
            "tool_choice": "required",
            "max_tokens": 64,
            "temperature": 0,
        },
    )["choices"][0]
    assert got["finish_reason"] == "tool_calls" and got["message"]["content"] is None, got
    (call,) = got["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    name, args = call["function"]["name"], json.loads(call["function"]["arguments"])
    assert name in ("get_weather", "get_time")
    if name == "get_weather":
        assert set(args) == {"city", "unit"} and args["unit"] in ("C", "F") and len(args["city"]) <= 30
    named = page.evaluate(
        CREATE_JS,
        {
            "messages": [{"role": "user", "content": "What time is it?"}],
            "tools": [WEATHER, TIME],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            "max_tokens": 32,
            "temperature": 0,
        },
    )["choices"][0]
    assert named["message"]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}, named
    log.assert_clean()

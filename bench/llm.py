"""LLM prefill and decode speed: Lumen's browser engine (WASM, 1 and 2 threads), Transformers.js in
the same Chromium, native onnxruntime on the same ONNX files, PyTorch fp32, llama.cpp on the GGUF,
and wllama (llama.cpp in WASM, same Chromium, 1 and 2 threads) on that GGUF; on the default file also
ours under a JSON schema (constrained decoding), beside ours free.

Every engine gets the same prompt token ids (checked), greedy decoding, a short warm-up, then `runs`
timed generations (browsers: at least `min_runs`, more while the time budget lasts). Prefill: the
prompt's forward pass to the first new token (ms). Decode: tokens after the first over their time
(tok/s)."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from bench import rows
from bench import wllama as wllama_peer
from bench.browser import Browser, evaluate, or_reason
from bench.plan import CHAT, REPO, Plan
from bench.stats import summarize
from contract.manifest import ModelEntry
from reference.fudd_prompt import FuddPrompt
from runtime.onnx_decoder import OnnxDecoder
from runtime.progress import bar

OURS_JS = """async ([id, variant, threads, tokens, runs, minRuns, budgetMs, messages, responseFormat]) => {
  const load = await window.engine.loadChat(id, { runtime: 'wasm', threads, variant });
  // cache_prompt false: every run prefills the whole prompt (the engine would otherwise reuse the last
  // run's KV cache for this same prompt and prefill one token).
  const request = { messages, max_tokens: tokens, temperature: 0, cache_prompt: false,
    ...(responseFormat && { response_format: responseFormat }) };
  const warm = await window.engine.chat.completions.create({ ...request, max_tokens: 2 });
  const results = [];
  const start = performance.now();
  for (let i = 0; i < runs && (i < minRuns || performance.now() - start < budgetMs); i++) {
    const r = await window.engine.chat.completions.create(request);
    results.push({ ...r.usage.extra, completion_tokens: r.usage.completion_tokens });
  }
  return { load, prompt: warm.prompt_token_ids, results };
}"""
WLLAMA_JS = (
    "([messages, tokens, runs, minRuns, budgetMs, threads]) => "
    "window.wllamaPeer.llm(messages, tokens, runs, minRuns, budgetMs, threads)"
)
PEER_JS = (
    "([id, file, messages, tokens, runs, minRuns, budgetMs]) => "
    "window.peer.llm(id, file, messages, tokens, runs, minRuns, budgetMs)"
)


def prompt_ids(root: Path, model_id: str) -> list[int]:
    """The chat prompt through the exported tokenizer's own chat template (what both browsers use)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / model_id)
    return list(tokenizer.apply_chat_template(CHAT, add_generation_prompt=True))


def _timed(results: list[dict]) -> dict[str, dict]:
    """Per-run {prefill_ms, decode_tokens_per_s, completion_tokens} -> summaries."""
    return {
        "prefill_ms": summarize([r["prefill_ms"] for r in results]),
        "decode_tok_s": summarize([r["decode_tokens_per_s"] for r in results]),
        "tokens": summarize([r["completion_tokens"] for r in results]),
    }


def _check_prompt(engine: str, got: list[int], want: list[int]) -> None:
    if got != want:
        raise AssertionError(
            f"{engine} tokenized the chat prompt differently ({len(got)} vs {len(want)} ids): "
            "the comparison would not be on the same input"
        )


# The app's own structured workload: FuDD's answer schema (3 objects of two bounded strings), longer
# than the benchmark's token count, so constrained and free runs decode the same number of tokens.
CONSTRAINED = {
    "type": "json_schema",
    "json_schema": {"name": "fudd_pairs", "schema": json.loads(FuddPrompt.load().schema("lighthouse", "storm", 3))},
}


def ours(
    browser: Browser,
    url: str,
    plan: Plan,
    variant: str,
    threads: int,
    prompt: list[int],
    response_format: dict | None = None,
) -> dict:
    with browser.context() as context:
        page = browser.open(context, f"{url}/?autoload=0", "window.lumenReady !== undefined")
        page.evaluate("window.lumenReady")
        args = [plan.llm_id, variant, threads, plan.tokens, plan.runs, plan.min_runs, plan.budget_ms, CHAT]
        out = evaluate(page, OURS_JS, [*args, response_format])
    if out["load"]["threads"] != threads:
        raise AssertionError(f"asked for {threads} WASM threads, got {out['load']['threads']}: no COOP/COEP?")
    _check_prompt("Lumen (browser)", out["prompt"], prompt)
    return _timed(out["results"]) | {"load_ms": out["load"]["loadMs"], "runtime": out["load"]["llm"]["runtime"]}


def peer(browser: Browser, url: str, plan: Plan, file_stem: str, threads: int, prompt: list[int]) -> dict:
    with browser.context() as context:
        page = browser.open(context, f"{url}/?threads={threads}&cache=0", "window.peer !== undefined")
        out = evaluate(
            page, PEER_JS, [plan.llm_id, file_stem, CHAT, plan.tokens, plan.runs, plan.min_runs, plan.budget_ms]
        )
    if not out["isolated"] and threads > 1:
        raise AssertionError("the Transformers.js page is not cross-origin isolated: it cannot use threads")
    _check_prompt("Transformers.js", out["prompt"], prompt)
    return _timed(out["results"]) | {"load_ms": out["loadMs"]}


def wllama(browser: Browser, url: str, plan: Plan, threads: int, prompt: list[int]) -> dict:
    """wllama on the source GGUF; its chat template must give the same number of prompt tokens
    (it takes text, not ids, so the count is what can be checked)."""
    with browser.context() as context:
        page = browser.open(context, f"{url}/wllama.html", "window.wllamaPeer !== undefined")
        out = evaluate(page, WLLAMA_JS, [CHAT, plan.tokens, plan.runs, plan.min_runs, plan.budget_ms, threads])
    if out["threads"] != threads or out["multithread"] != (threads > 1):
        raise AssertionError(
            f"asked wllama for {threads} threads, got {out['threads']} (multithread {out['multithread']})"
        )
    if out["promptTokens"] != len(prompt):
        raise AssertionError(f"wllama's chat template gave {out['promptTokens']} prompt tokens, ours {len(prompt)}")
    return _timed(out["results"]) | {"load_ms": out["loadMs"]}


def native(model_file: Path, prompt: list[int], threads: int, plan: Plan) -> dict:
    decoder = OnnxDecoder(model_file, threads=threads)
    decoder.greedy(prompt, plan.tokens)  # warm-up: the first runs allocate and pre-pack weights
    runs = []
    for _ in range(plan.runs):
        _, prefill_s, decode_s = decoder.greedy(prompt, plan.tokens)
        runs.append(
            {
                "prefill_ms": prefill_s * 1000,
                "decode_tokens_per_s": (plan.tokens - 1) / decode_s,
                "completion_tokens": plan.tokens,
            }
        )
    return _timed(runs)


def pytorch(plan: Plan, prompt: list[int]) -> dict:
    """PyTorch fp32 (the exporter's own loader: the GGUF dequantized), KV cache, greedy."""
    import torch

    from exporter.llm_sources import load_llm

    torch.set_num_threads(plan.native_threads)
    model = load_llm(plan.llm_source).model

    @torch.inference_mode()
    def generate() -> dict:
        t0 = time.perf_counter()
        out = model(torch.tensor([prompt]), use_cache=True)
        token = int(out.logits[0, -1].argmax())
        t1 = time.perf_counter()
        for _ in range(plan.tokens - 1):
            out = model(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
            token = int(out.logits[0, -1].argmax())
        t2 = time.perf_counter()
        return {
            "prefill_ms": (t1 - t0) * 1000,
            "decode_tokens_per_s": (plan.tokens - 1) / (t2 - t1),
            "completion_tokens": plan.tokens,
        }

    generate()
    return _timed([generate() for _ in range(plan.runs)])


def llama_cpp(plan: Plan, prompt: list[int]) -> dict | str:
    """llama.cpp on the source GGUF, in a child process (bench/llama_cpp.py); a string says why there is no number."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "not installed (pip install '.[bench]')"
    if plan.llm_source != "smollm2":
        return "no GGUF source for this model"
    from exporter.sources import packaged_smollm2_gguf

    args = {
        "gguf": str(packaged_smollm2_gguf()),
        "threads": plan.native_threads,
        "prompt": prompt,
        "tokens": plan.tokens,
        "runs": plan.runs,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench.llama_cpp", json.dumps(args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode == -signal.SIGILL:
        return "crashed (SIGILL: rebuild llama-cpp-python for this CPU, see docs/design.md)"
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    return _timed(json.loads(proc.stdout))


def wllama_rows(browser: Browser, peer_url: str, plan: Plan, prompt: list[int]) -> dict[str, dict | str]:
    """wllama_<N>t per thread count, or why there is no number (no GGUF for this model)."""
    gguf = wllama_peer.gguf_for(plan.llm_source)
    if isinstance(gguf, str):
        return {f"wllama_{threads}t": gguf for threads in plan.threads}
    return {
        f"wllama_{threads}t": or_reason(partial(wllama, browser, peer_url, plan, threads, prompt))
        for threads in plan.threads
    }


def run(plan: Plan, entry: ModelEntry, ours_url: str, peer_url: str, browser: Browser) -> dict:
    """Section 'llm': rows per ONNX file (prefill ms, decode tok/s) plus the PyTorch and llama.cpp
    references; wllama's numbers sit in the default file's row (it runs the GGUF that file comes from)."""
    prompt = prompt_ids(plan.artifacts, plan.llm_id)
    variants = plan.variants(entry)
    table: list[dict] = []
    configs = len(variants) * (len(plan.threads) + 2) + len(plan.threads) + 3
    with bar(configs, "[bench] llm", unit="config") as progress:
        peers_on_gguf = wllama_rows(browser, peer_url, plan, prompt)
        progress.update(1)
        for variant in variants:
            logical = entry.variants[variant].files["model"]
            model_file = plan.artifacts / logical
            engines: dict[str, dict | str] = {}
            for threads in plan.threads:
                engines[f"ours_wasm_{threads}t"] = ours(browser, ours_url, plan, variant, threads, prompt)
                progress.update(1)
            engines[f"transformers_js_{plan.native_threads}t"] = or_reason(
                partial(peer, browser, peer_url, plan, Path(logical).stem, plan.native_threads, prompt)
            )
            progress.update(1)
            engines[f"native_ort_{plan.native_threads}t"] = native(model_file, prompt, plan.native_threads, plan)
            progress.update(1)
            if entry.defaults.get("wasm") == variant:
                engines |= peers_on_gguf
                for threads in plan.threads:  # the same file under a JSON schema (xgrammar masks every step)
                    engines[f"ours_wasm_{threads}t_json"] = ours(
                        browser, ours_url, plan, variant, threads, prompt, CONSTRAINED
                    )
                    progress.update(1)
            label = f"{variant} ({Path(logical).name}{', default' if entry.defaults.get('wasm') == variant else ''})"
            table += rows.metric_rows("llm", plan.llm_id, label, engines, rows.LLM_METRICS, plan.native_threads)
        references: dict[str, dict | str] = {"pytorch_fp32": pytorch(plan, prompt)}
        progress.update(1)
        references["llama_cpp"] = llama_cpp(plan, prompt)
        progress.update(1)
    origin = "GGUF dequantized" if plan.llm_source == "smollm2" else "same weights"
    table += rows.metric_rows(
        "llm",
        plan.llm_id,
        f"PyTorch fp32 ({origin})",
        {"pytorch_fp32": references["pytorch_fp32"]},
        rows.LLM_METRICS,
        plan.native_threads,
    )
    table += rows.metric_rows(
        "llm",
        plan.llm_id,
        "GGUF Q4_1 source (llama.cpp)",
        {"llama_cpp": references["llama_cpp"]},
        rows.LLM_METRICS,
        plan.native_threads,
    )
    return {"prompt_tokens": len(prompt), "new_tokens": plan.tokens, "rows": table}

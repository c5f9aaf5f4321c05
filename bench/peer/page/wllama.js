// The llama.cpp-in-WASM peer: wllama on the source GGUF (the Q4_1 file Lumen's default LLM is
// exported from), fully offline. Driven by bench/{llm,load}.py through Playwright (served by
// bench/wllama.py): window.wllamaPeer.{llm,firstChatToken}. The library's ESM bundle and its
// one .wasm (single- and multi-threaded in one build) are served under /wllama/ beside the GGUF.
import { Wllama } from "/wllama/index.js";

const GGUF = "/wllama/model.gguf";

/** A fresh wllama on WASM only (n_gpu_layers 0), `threads` workers; `cache`: keep the GGUF in OPFS. */
async function load(threads, cache) {
  const wllama = new Wllama({ default: "/wllama/wllama.wasm" }, { suppressNativeLog: true, allowOffline: cache });
  await wllama.loadModelFromUrl(GGUF, { n_threads: threads, n_gpu_layers: 0, n_ctx: 1024, useCache: cache });
  return wllama;
}

/** Greedy chat completion of exactly `tokens` new tokens (ignore_eos), timed from the stream's chunks. */
async function generateTimed(wllama, messages, tokens) {
  const stamps = [];
  let last = null;
  const t0 = performance.now();
  await wllama.createChatCompletion({
    messages, max_tokens: tokens, temperature: 0, ignore_eos: true, cache_prompt: false, stream: true,
    onData: (chunk) => {
      if (chunk.choices?.[0]?.delta?.content) stamps.push(performance.now());
      last = chunk;
    },
  });
  const timings = last?.timings ?? null;
  const completion = timings?.predicted_n ?? stamps.length;
  const decodeMs = stamps[stamps.length - 1] - stamps[0];
  return {
    prefill_ms: stamps[0] - t0, decode_ms: decodeMs, completion_tokens: completion,
    // Chunks carry whole UTF-8 characters, so a chunk may hold more than one token: count tokens
    // from llama.cpp's own tally, time from the first chunk to the last.
    decode_tokens_per_s: completion > 1 ? ((completion - 1) / decodeMs) * 1000 : 0,
    prompt_tokens: timings?.prompt_n ?? last?.usage?.prompt_tokens ?? null,
    llama_cpp_timings: timings,
  };
}

/** `runs` timed generations at most; after `minRuns`, only while `budgetMs` lasts (as peer.js). */
async function llm(messages, tokens, runs, minRuns, budgetMs, threads) {
  const t0 = performance.now();
  const wllama = await load(threads, false);
  const loadMs = performance.now() - t0;
  const warm = await generateTimed(wllama, messages, 2);
  const results = [];
  const start = performance.now();
  for (let i = 0; i < runs && (i < minRuns || performance.now() - start < budgetMs); i++) {
    results.push(await generateTimed(wllama, messages, tokens));
  }
  const out = { loadMs, promptTokens: warm.prompt_tokens, results, threads: wllama.getNumThreads(),
    multithread: wllama.isMultithread(), isolated: self.crossOriginIsolated };
  await wllama.exit();
  return out;
}

/** Load-to-first-token as a user sees it; the GGUF stays in wllama's OPFS cache for the warm reload. */
async function firstChatToken(messages, threads) {
  const t0 = performance.now();
  const wllama = await load(threads, true);
  const timed = await generateTimed(wllama, messages, 1);
  window.wllamaPeer.loaded = wllama; // kept alive: bench/memory.py measures the page after this
  return { ms: performance.now() - t0, tokens: timed.completion_tokens };
}

window.wllamaPeer = { llm, firstChatToken, loaded: null };

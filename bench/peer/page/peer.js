// The in-browser peer: Transformers.js on the same ONNX files Lumen serves, fully offline.
// Driven by bench/{llm,clip,load}.py through Playwright (served by bench/transformers_js.py): window.peer.{llm,clip,firstChatToken,firstClassification,asr}.
// Served beside a copy of transformers.min.js (onnxruntime-web bundled in) and that exact
// onnxruntime-web build's runtime pair under /ort/ (its default would be a CDN).
import {
  env, AutoTokenizer, AutoModelForCausalLM, AutoProcessor, CLIPVisionModelWithProjection,
  CLIPTextModelWithProjection, RawImage, pipeline,
} from "/transformers.min.js";

const params = new URLSearchParams(location.search);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = "/models/";
env.useBrowserCache = params.get("cache") !== "0";
env.useWasmCache = false; // its wasm cache imports a blob: URL, which the server's CSP forbids
env.backends.onnx.wasm.wasmPaths = {
  mjs: "/ort/ort-wasm-simd-threaded.asyncify.mjs", wasm: "/ort/ort-wasm-simd-threaded.asyncify.wasm",
};
env.backends.onnx.wasm.numThreads = Number(params.get("threads") ?? 2);

// The file Lumen names "onnx/model_q4.onnx" loads as model_file_name "model_q4" with dtype fp32
// (no suffix): every variant, even those without a Transformers.js suffix, runs the same bytes.
const fileOptions = (file) => ({ device: "wasm", dtype: "fp32", model_file_name: file });

/** Greedy generation; times from the streamer: prompt put first, then one put per new token. */
async function generateTimed(model, inputs, maxNewTokens) {
  const stamps = [];
  const streamer = { put: () => stamps.push(performance.now()), end: () => {} };
  const t0 = performance.now();
  const out = await model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false, streamer });
  const newTokens = stamps.length - 1; // the first put is the prompt
  const prefillMs = stamps[1] - t0;
  const decodeMs = stamps[stamps.length - 1] - stamps[1];
  return {
    prefill_ms: prefillMs, decode_ms: decodeMs, completion_tokens: newTokens,
    decode_tokens_per_s: newTokens > 1 ? ((newTokens - 1) / decodeMs) * 1000 : 0,
    token_ids: Array.from(out[0].data, Number).slice(inputs.input_ids.dims[1]),
  };
}

async function loadChat(id, file) {
  const tokenizer = await AutoTokenizer.from_pretrained(id);
  const model = await AutoModelForCausalLM.from_pretrained(id, fileOptions(file));
  return { tokenizer, model };
}

function chatInputs(tokenizer, messages) {
  return tokenizer.apply_chat_template(messages, { add_generation_prompt: true, return_dict: true });
}

/** `runs` timed generations at most; after `minRuns`, only while `budgetMs` lasts. */
async function llm(id, file, messages, tokens, runs, minRuns, budgetMs) {
  const t0 = performance.now();
  const { tokenizer, model } = await loadChat(id, file);
  const loadMs = performance.now() - t0;
  const inputs = chatInputs(tokenizer, messages);
  await generateTimed(model, inputs, 2); // warm-up: prefill and one decode step
  const results = [];
  const start = performance.now();
  for (let i = 0; i < runs && (i < minRuns || performance.now() - start < budgetMs); i++) {
    results.push(await generateTimed(model, inputs, tokens));
  }
  await model.dispose();
  return { loadMs, prompt: Array.from(inputs.input_ids.data, Number), results, isolated: self.crossOriginIsolated };
}

/** files: ONNX file stems from the manifest, e.g. {vision: "vision_model_quantized", text: "text_model_quantized"}. */
async function loadClip(id, files) {
  const processor = await AutoProcessor.from_pretrained(id);
  const tokenizer = await AutoTokenizer.from_pretrained(id);
  const vision = await CLIPVisionModelWithProjection.from_pretrained(id, fileOptions(files.vision));
  const text = await CLIPTextModelWithProjection.from_pretrained(id, fileOptions(files.text));
  return { processor, tokenizer, vision, text };
}

async function embedImages(m, urls) {
  const images = await Promise.all(urls.map((u) => RawImage.fromURL(u)));
  const { pixel_values } = await m.processor(images);
  return (await m.vision({ pixel_values })).image_embeds;
}

async function embedTexts(m, texts) {
  const inputs = m.tokenizer(texts, { padding: true, truncation: true });
  return (await m.text(inputs)).text_embeds;
}

/** ms per item of `fn(batch)`, one warm-up, then timed calls as in llm(); `make(i)` builds the i-th batch. */
async function perItem(fn, make, size, runs, minRuns, budgetMs) {
  await fn(make(0));
  const ms = [];
  const start = performance.now();
  for (let i = 0; i < runs && (i < minRuns || performance.now() - start < budgetMs); i++) {
    const batch = make(i + 1);
    const t0 = performance.now();
    await fn(batch);
    ms.push((performance.now() - t0) / size);
  }
  return ms;
}

async function clip(id, files, urls, texts, batches, runs, minRuns, budgetMs) {
  const t0 = performance.now();
  const m = await loadClip(id, files);
  const loadMs = performance.now() - t0;
  const out = { loadMs, image: {}, text: {} };
  const pick = (list, n, i) => Array.from({ length: n }, (_, k) => list[(i + k) % list.length]);
  for (const n of batches) {
    out.image[n] = await perItem((b) => embedImages(m, b), (i) => pick(urls, n, i), n, runs, minRuns, budgetMs);
    out.text[n] = await perItem((b) => embedTexts(m, b), (i) => pick(texts, n, i), n, runs, minRuns, budgetMs);
  }
  for (const model of [m.vision, m.text]) await model.dispose();
  return out;
}

/** Load-to-first-answer as a user sees it: page open -> models loaded -> first result. */
async function firstClassification(id, files, url, labels) {
  const t0 = performance.now();
  const m = await loadClip(id, files);
  const image = await embedImages(m, [url]);
  const text = await embedTexts(m, labels.map((l) => `a photo of a ${l}.`));
  return { ms: performance.now() - t0, dims: [image.dims, text.dims] };
}

async function firstChatToken(id, file, messages) {
  const t0 = performance.now();
  const { tokenizer, model } = await loadChat(id, file);
  const timed = await generateTimed(model, chatInputs(tokenizer, messages), 1);
  return { ms: performance.now() - t0, tokens: timed.completion_tokens };
}

window.peer = { llm, clip, firstClassification, firstChatToken, asr, version: env.version };

/** Whisper through the automatic-speech-recognition pipeline: real-time factor per clip (16 kHz samples). */
async function asr(id, dtype, clips, runs) {
  const recognizer = await pipeline("automatic-speech-recognition", id, { device: "wasm", dtype });
  await recognizer(Float32Array.from(clips[0])); // warm-up
  const rtf = [];
  const texts = [];
  for (let r = 0; r < runs; r++) for (const c of clips) {
    const t0 = performance.now();
    const out = await recognizer(Float32Array.from(c));
    rtf.push((performance.now() - t0) / 1000 / (c.length / 16000));
    texts.push(out.text);
  }
  await recognizer.dispose();
  return { rtf, texts };
}

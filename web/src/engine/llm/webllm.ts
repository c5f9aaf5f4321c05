// The MLC path: when the manifest lists a compiled MLC model library for the model and WebGPU has
// the features it needs, chat runs on WebLLM (@mlc-ai/web-llm) with the self-hosted MLC artifacts
// (/models/<id>/mlc/<quant>/resolve/main/..., no CDN); otherwise on onnxruntime-web (onnx_chat_model.ts).
// planChatPath is the whole decision, a pure function; WebLlmModel adapts WebLLM's
// OpenAI-style engine to the LlmModel interface the worker drives.
// Offline and integrity: WebLLM fetches URLs and caches them itself (and keeps a broken copy after a
// failed download), so its files first go through our verified, resumable cache (storage/store.ts), the
// service worker answers WebLLM's requests from that cache (sw.ts), and WebLLM's own copy is
// dropped after loading: one verified copy, usable offline.

import type { MLCEngine } from "@mlc-ai/web-llm";
import type { GenerationEvent, GenerationParams, GenerationResult, TokenLogprob } from "./chat";
import { InferenceError, InvalidRequestError } from "../errors";
import type { LlmModel, LlmModelInfo } from "./onnx_chat_model";
import type { GrammarSpec } from "./response_format";
import type { LlmInfo, MlcBuild, ModelEntry } from "../manifest.gen";
import { cacheFiles, fileEntry, modelUrl, type ProgressCallback } from "../storage/store";

/** What the worker knows about WebGPU: null when there is no adapter (with why). */
export interface GpuSupport {
  features: ReadonlySet<string>;
}

export type ChatPathPlan =
  | { path: "webllm"; build: MlcBuild; reason: string }
  | { path: "onnxruntime-web"; reason: string };

// Fastest first: 4-bit weights with fp16 math, then fp32 math, then unquantized.
const PREFERENCE: ReadonlyArray<MlcBuild["quantization"]> = ["q4f16_1", "q4f32_1", "q0f16", "q0f32"];

/**
 * Which engine runs chat. WebLLM needs (1) an MLC build whose model library was compiled, (2) a
 * WebGPU adapter, (3) the adapter features the build needs (shader-f16 for q4f16_1 / q0f16).
 * `gpu` is null without an adapter; `gpuWhy` then says why. `wasmRequested`: the user asked for WASM.
 */
export function planChatPath(llm: LlmInfo, gpu: GpuSupport | null, gpuWhy: string, wasmRequested = false): ChatPathPlan {
  const builds = llm.mlc ?? [];
  if (builds.length === 0) return { path: "onnxruntime-web", reason: "the manifest lists no MLC (WebLLM) build for this model" };
  const compiled = builds.filter((b) => b.model_lib);
  if (compiled.length === 0) {
    const status = builds.map((b) => `${b.quantization}: ${b.model_lib_status}`).join("; ");
    return { path: "onnxruntime-web", reason: `no MLC model library was compiled for this model (${status})` };
  }
  if (wasmRequested) return { path: "onnxruntime-web", reason: "the WASM runtime was requested; WebLLM runs only on WebGPU" };
  if (!gpu) return { path: "onnxruntime-web", reason: `WebLLM needs WebGPU, and ${gpuWhy}` };
  const runnable = compiled.filter((b) => !b.requires_shader_f16 || gpu.features.has("shader-f16"));
  if (runnable.length === 0) {
    const names = compiled.map((b) => b.quantization).join(", ");
    return { path: "onnxruntime-web", reason: `the MLC build (${names}) needs WebGPU shader-f16, which this adapter lacks` };
  }
  const build = [...runnable].sort((a, b) => PREFERENCE.indexOf(a.quantization) - PREFERENCE.indexOf(b.quantization))[0]!;
  const gpuNeeds = build.requires_shader_f16 ? "WebGPU with shader-f16" : "WebGPU";
  return { path: "webllm", build, reason: `MLC model library for ${build.quantization} and ${gpuNeeds} are available` };
}

/** Folder URL WebLLM is pointed at; it appends resolve/main/ itself. */
function folderUrl(path: string): string {
  return modelUrl(path.endsWith("/") ? path : `${path}/`);
}

export class WebLlmModel implements LlmModel {
  private constructor(readonly info: LlmModelInfo, private readonly engine: MLCEngine) {}

  static async load(entry: ModelEntry, build: MlcBuild, reason: string,
    onProgress?: ProgressCallback): Promise<WebLlmModel> {
    const webllm = await import("@mlc-ai/web-llm"); // a separate chunk: fetched only on this path
    const modelId = `${entry.id}-${build.quantization}`;
    const files = entry.files.filter((f) => f.path.startsWith(`${build.path}/`));
    const totalBytes = files.reduce((s, f) => s + f.bytes, 0);
    const lib = fileEntry(entry, build.model_lib!);
    await cacheFiles(files.includes(lib) ? files : [...files, lib], onProgress);
    const start = performance.now();
    const appConfig = {
      model_list: [{
        model: folderUrl(build.path),
        model_id: modelId,
        model_lib: modelUrl(build.model_lib!),
        required_features: build.requires_shader_f16 ? ["shader-f16"] : [],
        overrides: { context_window_size: entry.llm!.context_length },
      }],
    };
    const engine = await webllm.CreateMLCEngine(modelId, {
      appConfig,
      // WebLLM reports a fraction, not bytes: scale it to the manifest's size of the MLC folder.
      initProgressCallback: (report) => {
        const seconds = (performance.now() - start) / 1000;
        const loadedBytes = Math.round(report.progress * totalBytes);
        const rate = seconds > 0 ? loadedBytes / seconds : 0;
        onProgress?.({ loadedBytes, totalBytes, mbPerSecond: rate / 1e6,
          etaSeconds: rate > 0 ? (totalBytes - loadedBytes) / rate : null, file: report.text });
      },
    }).catch((err: unknown) => {
      throw new InferenceError(`WebLLM cannot load ${modelId}: ${String(err)}`, "use the onnxruntime-web path (runtime=wasm)");
    });
    await webllm.deleteModelAllInfoInCache(modelId, appConfig).catch(() => undefined); // ours is the copy kept
    const info: LlmModelInfo = {
      id: entry.id,
      revision: entry.revision,
      trained: entry.trained,
      note: entry.note ?? null,
      path: "webllm",
      pathReason: reason,
      runtime: `WebLLM (WebGPU), MLC ${build.quantization}`,
      variant: build.quantization,
      bytes: totalBytes,
      contextLength: entry.llm!.context_length,
    };
    return new WebLlmModel(info, engine);
  }

  /**
   * WebLLM streams text, not token ids: tokenIds stay empty here, logprobs carry token_id -1, and
   * prompt_token_ids is empty. Everything else maps one to one.
   */
  async generate(params: GenerationParams, onEvent: (event: GenerationEvent) => void,
    shouldStop: () => boolean): Promise<GenerationResult> {
    if (!params.cachePrompt) {
      throw new InvalidRequestError("cache_prompt: false is not supported on the WebLLM path: WebLLM manages its own KV cache",
        "omit cache_prompt, or load the model with runtime 'wasm' (onnxruntime-web)");
    }
    const wantLogprobs = params.top_logprobs >= 0;
    const stream = await this.engine.chat.completions.create({
      messages: params.messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: params.max_tokens,
      temperature: params.temperature,
      top_p: params.top_p,
      seed: params.seed,
      ...(wantLogprobs && { logprobs: true, top_logprobs: params.top_logprobs }),
      ...(params.grammar && { response_format: webLlmResponseFormat(params.grammar) }),
      ...(params.stop.length > 0 && { stop: params.stop }),
      ...(params.adjust.logitBias.length > 0 && { logit_bias: Object.fromEntries(params.adjust.logitBias.map(([id, b]) => [String(id), b])) }),
      presence_penalty: params.adjust.presencePenalty,
      frequency_penalty: params.adjust.frequencyPenalty,
    });
    let text = "";
    let finishReason: GenerationResult["finishReason"] = "stop";
    let usage: GenerationResult["usage"] | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice) {
        const delta = choice.delta.content ?? "";
        text += delta;
        const logprobs: TokenLogprob[] | undefined = choice.logprobs?.content?.map((l) => ({
          token: l.token, token_id: -1, logprob: l.logprob,
          top_logprobs: l.top_logprobs.map((t) => ({ token: t.token, token_id: -1, logprob: t.logprob })),
        }));
        if (delta || logprobs?.length) onEvent({ delta, tokenIds: [], ...(wantLogprobs && { logprobs }) });
        if (choice.finish_reason === "length") finishReason = "length";
      }
      if (chunk.usage) {
        const u = chunk.usage;
        usage = {
          prompt_tokens: u.prompt_tokens,
          completion_tokens: u.completion_tokens,
          total_tokens: u.total_tokens,
          extra: {
            runtime: this.info.runtime,
            prefill_ms: u.extra.time_to_first_token_s * 1000,
            decode_ms: (u.extra.e2e_latency_s - u.extra.time_to_first_token_s) * 1000,
            prefill_tokens_per_s: u.extra.prefill_tokens_per_s,
            decode_tokens_per_s: u.extra.decode_tokens_per_s,
          },
        };
      }
      if (shouldStop()) await this.engine.interruptGenerate();
    }
    return {
      text,
      finishReason,
      promptTokenIds: [],
      tokenIds: [],
      usage: usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }

  async dispose(): Promise<void> {
    await this.engine.unload();
  }
}

/** Our grammar as WebLLM spells it (it runs xgrammar too; schemas go as JSON text). */
function webLlmResponseFormat(spec: GrammarSpec):
  { type: "json_object" | "grammar" | "structural_tag"; schema?: string; grammar?: string; structural_tag?: string } {
  if (spec.kind === "grammar") return { type: "grammar", grammar: spec.ebnf };
  if (spec.kind === "structural_tag") return { type: "structural_tag", structural_tag: spec.tag };
  return spec.kind === "json_schema" ? { type: "json_object", schema: spec.schema } : { type: "json_object" };
}

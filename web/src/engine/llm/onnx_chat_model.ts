// A chat LLM on onnxruntime-web, in the worker: the decoder exported with KV cache (inputs
// input_ids, attention_mask, position_ids, past_key_values.N.key/value; outputs logits,
// present.N.key/value), its tokenizer and chat template, and the generation loop. The session and
// its KV cache: decoder_session.ts; tokenizer and template: chat_tokenizer.ts; streaming: streamer.ts.

import type * as Ort from "onnxruntime-web";
import type { GenerationEvent, GenerationParams, GenerationResult, TokenLogprob } from "./chat";
import { InferenceError, InvalidRequestError, ModelNotFoundError, UnsupportedModelConfigError } from "../errors";
import type { FileEntry, ModelEntry } from "../manifest.gen";
import { dequantizeMatMulNBits } from "../runtime/onnx_dequant";
import type { Runtime } from "../runtime/runtime";
import { checkSize, decodeJson, DEFAULT_MAX_MODEL_BYTES, optionalConfig, pickVariant, requiredConfig } from "../runtime/model_files";
import { fetchFiles, fileEntry, type ProgressCallback } from "../storage/store";
import { ChatTokenizer, type TokenizerConfig } from "./chat_tokenizer";
import { createDecoderSession, kvSpec, logitsRow, releaseGpu, type KvSpec } from "./decoder_session";
import { logSoftmax, SeededRandom, sampleToken, topIndices } from "./sampling";
import { TextStreamer } from "./streamer";
import { StopStrings } from "./stop_strings";
import { adjustLogits, hasAdjustments } from "./logit_adjust";
import { encodedVocab, GrammarCompilers } from "./grammar";
import { PrefixCache } from "./prefix_cache";

export interface LlmModelInfo {
  id: string;
  revision: string;
  trained: boolean;
  note: string | null;
  /** Which engine generates: onnxruntime-web here, or WebLLM (webllm.ts). */
  path: "onnxruntime-web" | "webllm";
  /** Why that path, e.g. "no MLC model library was built for this model". */
  pathReason: string;
  /** Human-readable runtime, e.g. "onnxruntime-web wasm, 2 threads, variant q8 (model_quantized.onnx)". */
  runtime: string;
  variant: string;
  bytes: number;
  contextLength: number;
  /** onnxruntime-web path: milliseconds per load step (read: download or OPFS read and sha256;
   * tokenizer; expand: 4-bit -> fp32; session: onnxruntime's session creation; grammar). */
  loadSteps?: Record<string, number>;
}

/** What the worker drives: onnxruntime-web (here) or WebLLM (webllm.ts) behind one interface. */
export interface LlmModel {
  readonly info: LlmModelInfo;
  /** Runs one request; `shouldStop` is polled between steps (abort). */
  generate(params: GenerationParams, onEvent: (event: GenerationEvent) => void,
    shouldStop: () => boolean): Promise<GenerationResult>;
  dispose(): Promise<void>;
}

export interface LlmLoadOptions {
  variant?: string;
  /** WASM: expand MatMulNBits weights to fp32 once at load (default true; see runtime/onnx_dequant.ts). */
  expandWeights?: boolean;
  maxBytes?: number;
  onProgress?: ProgressCallback;
}

/**
 * Lets queued messages (an abort) run between decode steps. onnxruntime-web's WASM run() finishes
 * synchronously, so `await session.run()` alone never yields to the message queue; setTimeout(0)
 * is clamped to 4 ms after a few nestings, a MessageChannel round trip is not.
 */
const yieldChannel = new MessageChannel();
const yieldWaiters: Array<() => void> = [];
yieldChannel.port1.onmessage = () => yieldWaiters.shift()?.();
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    yieldWaiters.push(resolve);
    yieldChannel.port2.postMessage(null);
  });
}

/** The .onnx file of a variant, and its external-data file(s) (`<file>.onnx_data`, `<file>.onnx_data_1`). */
function variantFiles(entry: ModelEntry, variant: string): { model: FileEntry; data: FileEntry[] } {
  const paths = Object.values(entry.variants[variant]!.files);
  const modelPath = paths.find((p) => p.endsWith(".onnx"));
  if (!modelPath) throw new ModelNotFoundError(`variant ${variant} of ${entry.id} names no .onnx file`);
  const data = entry.files.filter((f) => f.path.startsWith(`${modelPath}_data`));
  return { model: fileEntry(entry, modelPath), data };
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export class OnnxLlmModel implements LlmModel {
  private constructor(
    readonly info: LlmModelInfo,
    private readonly runtime: Runtime,
    private readonly session: Ort.InferenceSession,
    private readonly tokenizer: ChatTokenizer,
    private readonly kv: KvSpec,
    private readonly stopIds: Set<number>,
    private readonly grammars: GrammarCompilers,
  ) {
    this.prefixes = new PrefixCache(runtime.ort, kv);
  }

  /** The last request's KV cache, reused by the next one that extends it. */
  private readonly prefixes: PrefixCache;

  static async load(entry: ModelEntry, runtime: Runtime, pathReason: string,
    options: LlmLoadOptions = {}): Promise<OnnxLlmModel> {
    if (!entry.llm) throw new ModelNotFoundError(`${entry.id} is not a chat model (task ${entry.task})`);
    const variant = pickVariant(entry, runtime, options.variant);
    const { model, data } = variantFiles(entry, variant);
    const tokenizerFile = requiredConfig(entry, "tokenizer");
    const tokenizerConfigFile = requiredConfig(entry, "tokenizer_config");
    const templateFile = optionalConfig(entry, "chat_template"); // else the template is in tokenizer_config.json
    const files = [model, ...data, tokenizerFile, tokenizerConfigFile, ...(templateFile ? [templateFile] : [])];
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    checkSize(entry, variant, bytes, Math.max(...files.map((f) => f.bytes)), runtime,
      options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES);

    const loadSteps: Record<string, number> = {};
    let stepStart = performance.now();
    const stepDone = (name: string) => {
      const now = performance.now();
      loadSteps[name] = now - stepStart;
      stepStart = now;
    };
    const got = await fetchFiles(files, options.onProgress);
    stepDone("read");
    const text = (path: string) => new TextDecoder().decode(got.get(path));
    const tokenizerJson = decodeJson<object>(got.get(tokenizerFile.path), tokenizerFile.path);
    const tokenizer = new ChatTokenizer(
      tokenizerJson,
      decodeJson<TokenizerConfig>(got.get(tokenizerConfigFile.path), tokenizerConfigFile.path),
      templateFile ? text(templateFile.path) : undefined,
    );
    stepDone("tokenizer");
    // Stop ids come from the manifest only: the exporter merged generation_config's and the
    // template's end-of-turn token into llm.eos_token_ids.
    const stopIds = new Set(entry.llm.eos_token_ids);
    if (stopIds.size === 0) {
      throw new UnsupportedModelConfigError(`${entry.id} names no end-of-turn token`,
        "re-export: the manifest's llm.eos_token_ids must list the token that ends a reply");
    }

    let modelBytes = got.get(model.path)!;
    got.delete(model.path); // let the original go once it is rewritten
    let weights = "";
    const expand = runtime.name === "wasm" && options.expandWeights !== false;
    // The steps after the download take seconds too: say which one runs.
    const steps = expand ? ["expanding weights", "creating the session"] : ["creating the session"];
    const preparing = (done: number) => options.onProgress?.({ loadedBytes: bytes, totalBytes: bytes, mbPerSecond: 0,
      etaSeconds: null, file: model.path, preparing: { step: steps[done]!, done, total: steps.length } });
    preparing(0);
    const externalData = data.map((f) => ({ path: basename(f.path), data: got.get(f.path)! }));
    if (expand) {
      // The fp32 weights go to the session as external data: no 4x-sized protobuf to build and parse.
      const expanded = dequantizeMatMulNBits(modelBytes, { externalWeights: `${basename(model.path)}.expanded` });
      if (expanded) {
        modelBytes = expanded.bytes;
        if (expanded.external) externalData.push(expanded.external);
        weights = `, ${expanded.nodes} MatMulNBits expanded to ${expanded.matmuls} fp32 MatMuls at load`;
      }
    }
    if (expand) {
      stepDone("expand");
      preparing(1);
    }
    const session = await createDecoderSession(runtime, entry, modelBytes, externalData, model.path);
    stepDone("session");
    const kv = kvSpec(session, entry);
    const threads = runtime.name === "wasm" ? `, ${runtime.threads} thread${runtime.threads === 1 ? "" : "s"}` : "";
    const info: LlmModelInfo = {
      id: entry.id,
      revision: entry.revision,
      trained: entry.trained,
      note: entry.note ?? null,
      path: "onnxruntime-web",
      pathReason,
      runtime: `onnxruntime-web ${runtime.name}${threads}, variant ${variant} (${basename(model.path)}${weights})`,
      variant,
      bytes,
      contextLength: entry.llm.context_length,
      loadSteps,
    };
    const grammars = new GrammarCompilers(encodedVocab(tokenizerJson, entry.llm.vocab_size), [...stopIds]);
    stepDone("grammar");
    return new OnnxLlmModel(info, runtime, session, tokenizer, kv, stopIds, grammars);
  }

  async generate(params: GenerationParams, onEvent: (event: GenerationEvent) => void,
    shouldStop: () => boolean): Promise<GenerationResult> {
    const { ort } = this.runtime;
    const promptIds = this.tokenizer.promptIds(params.messages);
    const room = this.info.contextLength - promptIds.length;
    if (room < 1) {
      throw new InvalidRequestError(
        `the prompt has ${promptIds.length} tokens; ${this.info.id} reads at most ${this.info.contextLength} in all, ` +
        `so a prompt may hold at most ${this.info.contextLength - 1} (one position is needed for the answer)`,
        `shorten the conversation by at least ${promptIds.length - this.info.contextLength + 1} tokens (drop older messages)`);
    }
    const maxNew = Math.min(params.max_tokens, room);
    const rng = new SeededRandom(params.seed);
    const streamer = new TextStreamer((ids) => this.tokenizer.decode(ids));
    const stopStrings = new StopStrings(params.stop);
    let shown = ""; // the deltas so far
    let endedOnStopToken = false;
    const adjusting = hasAdjustments(params.adjust);
    const counts = new Map<number, number>(); // generated token id -> times (penalties)
    const hasPositions = this.session.inputNames.includes("position_ids");
    const constraint = params.grammar ? await this.grammars.matcher(params.grammar) : null;

    // The last request's cache, cut to the prefix this prompt shares with it (prefix_cache.ts).
    const { past: reusedPast, reused } = await this.prefixes.take(promptIds, params.cachePrompt);
    let past = reusedPast;
    const tokenIds: number[] = [];
    let stepIds = promptIds.slice(reused);
    let cached = reused;
    let failed = true;
    let finishReason: "stop" | "length" = "length";
    let prefillMs = 0;
    let decodeMs = 0;
    try {
      while (tokenIds.length < maxNew && !shouldStop()) {
        const start = performance.now();
        const n = stepIds.length;
        const feeds: Record<string, Ort.Tensor> = {
          input_ids: new ort.Tensor("int64", BigInt64Array.from(stepIds, BigInt), [1, n]),
          attention_mask: new ort.Tensor("int64", new BigInt64Array(cached + n).fill(1n), [1, cached + n]),
        };
        if (hasPositions) {
          feeds.position_ids = new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt(cached + i)), [1, n]);
        }
        for (const [name, tensor] of past) feeds[name] = tensor;
        let outputs: Ort.InferenceSession.ReturnType;
        try {
          outputs = await this.session.run(feeds);
        } catch (err) {
          throw new InferenceError(`onnxruntime-web (${this.runtime.name}) failed at token ${tokenIds.length}: ${String(err)}`,
            this.runtime.name === "webgpu" ? "retry with the WASM runtime" : "reload the model");
        }
        const logits = logitsRow(outputs.logits!, n - 1); // [vocab]
        const adjusted = adjusting ? adjustLogits(logits, params.adjust, counts) : logits; // [vocab]
        const allowed = constraint ? await constraint.mask(adjusted) : adjusted; // forbidden at -Infinity
        const token = sampleToken(allowed, params.temperature, params.top_p, rng);
        constraint?.accept(token);
        counts.set(token, (counts.get(token) ?? 0) + 1);
        const next = new Map<string, Ort.Tensor>();
        for (const [pastName, presentName] of this.kv.pastToPresent) next.set(pastName, outputs[presentName]!);
        releaseGpu(past);
        past = next;
        cached += n;
        stepIds = [token];
        tokenIds.push(token);
        const elapsed = performance.now() - start;
        if (tokenIds.length === 1) prefillMs = elapsed;
        else decodeMs += elapsed;

        endedOnStopToken = this.stopIds.has(token);
        const delta = endedOnStopToken ? "" : stopStrings.push(streamer.push(token));
        shown += delta;
        onEvent({ delta, tokenIds: [token], logprobs: this.logprobs(logits, token, params.top_logprobs) });
        if (endedOnStopToken || stopStrings.stopped) {
          finishReason = "stop";
          break;
        }
        await yieldToEventLoop();
      }
      failed = false;
    } finally {
      // Kept for the next request (an aborted one too: its cache is as valid); dropped on errors.
      if (failed) releaseGpu(past);
      else this.prefixes.store([...promptIds, ...tokenIds].slice(0, cached), past);
      constraint?.dispose();
    }
    const tail = stopStrings.push(streamer.flush()) + stopStrings.flush();
    shown += tail;
    if (tail) onEvent({ delta: tail, tokenIds: [] });
    const textIds = endedOnStopToken ? tokenIds.slice(0, -1) : tokenIds;
    const decodeTokens = tokenIds.length - 1;
    return {
      // With stop strings the reply ends before the first one: exactly the text streamed.
      text: params.stop.length > 0 ? shown : this.tokenizer.decode(textIds),
      finishReason,
      promptTokenIds: promptIds,
      tokenIds,
      usage: {
        prompt_tokens: promptIds.length,
        completion_tokens: tokenIds.length,
        total_tokens: promptIds.length + tokenIds.length,
        prompt_tokens_details: { cached_tokens: reused },
        extra: {
          runtime: this.info.runtime,
          prefill_ms: prefillMs,
          decode_ms: decodeMs,
          prefill_tokens: promptIds.length - reused,
          prefill_tokens_saved: reused,
          prefill_tokens_per_s: prefillMs > 0 ? ((promptIds.length - reused) / prefillMs) * 1000 : 0,
          decode_tokens_per_s: decodeMs > 0 ? (decodeTokens / decodeMs) * 1000 : 0,
          ...(constraint && {
            grammar_mask_ms: constraint.maskMs,
            grammar_mask_ms_per_token: constraint.steps > 0 ? constraint.maskMs / constraint.steps : 0,
          }),
        },
      },
    };
  }

  private logprobs(logits: Float32Array, token: number, top: number): TokenLogprob[] | undefined {
    if (top < 0) return undefined;
    const logp = logSoftmax(logits);
    const entry = (id: number) => ({ token: this.tokenizer.tokenText(id), token_id: id, logprob: logp[id]! });
    const alternatives = top > 0 ? Array.from(topIndices(logp, top), entry) : [];
    return [{ ...entry(token), top_logprobs: alternatives }];
  }

  async dispose(): Promise<void> {
    this.prefixes.clear();
    await this.session.release();
  }
}

// A chat LLM on onnxruntime-web, in the worker: the decoder exported with KV cache (inputs
// input_ids, attention_mask, position_ids, past_key_values.N.key/value; outputs logits,
// present.N.key/value), its tokenizer and chat template, and the generation loop.
//
// Speed: per step the loop makes only the three small int64 inputs; the KV cache goes from one
// run's outputs straight into the next run's inputs. On WebGPU the present.* outputs stay in GPU
// buffers (preferredOutputLocation "gpu-buffer"); only logits come to the CPU. On WASM,
// onnxruntime-web 1.30's run() copies every input into its heap and every output out of it (it
// cannot bind outputs in the WASM heap), so the cache crosses JS once per step each way: about
// 46 KB per cached token for SmolLM2-135M (30 layers x K,V x 3 heads x 64 x fp32), ~1 ms per step
// at 100 tokens. The big cost on WASM is elsewhere: see onnx_dequant.ts.

import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import type * as Ort from "onnxruntime-web";
import type { ChatMessage, GenerationEvent, GenerationParams, GenerationResult, TokenLogprob } from "./chat";
import { InferenceError, InvalidRequestError, ModelNotFoundError, UnsupportedModelConfigError } from "./errors";
import type { FileEntry, ModelEntry } from "./manifest.gen";
import { dequantizeMatMulNBits, halfToFloat } from "./onnx_dequant";
import type { Runtime } from "./runtime";
import { logSoftmax, SeededRandom, sampleToken, topIndices } from "./sampling";
import { fetchFiles, fileEntry, type ProgressCallback } from "./store";
import { checkSize, decodeJson, DEFAULT_MAX_MODEL_BYTES, pickVariant } from "./vision";

export interface ChatModelInfo {
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
}

/** What the worker drives: onnxruntime-web (here) or WebLLM (webllm.ts) behind one interface. */
export interface ChatModel {
  readonly info: ChatModelInfo;
  /** Runs one request; `shouldStop` is polled between steps (abort). */
  generate(params: GenerationParams, onEvent: (event: GenerationEvent) => void,
    shouldStop: () => boolean): Promise<GenerationResult>;
  dispose(): Promise<void>;
}

export interface ChatLoadOptions {
  variant?: string;
  /** WASM: expand MatMulNBits weights to fp32 once at load (default true; see onnx_dequant.ts). */
  expandWeights?: boolean;
  maxBytes?: number;
  onProgress?: ProgressCallback;
}

type TokenizerConfig = Record<string, unknown> & { chat_template?: unknown };

function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "content" in value) return String((value as { content: unknown }).content);
  return undefined;
}

/** The tokenizer and chat template of a chat model (tokenizer.json, tokenizer_config.json). */
export class ChatTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template;
  private readonly specials: Record<string, string>;

  constructor(tokenizerJson: object, config: TokenizerConfig, templateFile?: string) {
    this.tokenizer = new Tokenizer(tokenizerJson, config);
    const source = chatTemplateSource(config.chat_template) ?? templateFile;
    if (!source) {
      throw new UnsupportedModelConfigError("the model has no chat template (tokenizer_config.json chat_template)",
        "re-export the model: the exporter writes the template into tokenizer_config.json");
    }
    this.template = new Template(source);
    this.specials = {};
    for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
      const text = tokenString(config[key]);
      if (text !== undefined) this.specials[key] = text;
    }
  }

  /** The prompt as the model was trained to see it, ending with the assistant's turn opening. */
  promptIds(messages: ChatMessage[]): number[] {
    const text = this.template.render({ messages, add_generation_prompt: true, ...this.specials });
    // The template already wrote the special tokens; adding them again would double the BOS.
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Byte-level BPE decodes exactly, so no "clean-up" of spaces: streamed pieces join to the same text. */
  decode(ids: number[]): string {
    if (ids.length === 0) return ""; // the library rejects an empty list
    return this.tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates ("default" first). */
function chatTemplateSource(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as Array<{ name?: string; template?: string }>;
    return (named.find((t) => t.name === "default") ?? named[0])?.template;
  }
  return undefined;
}

/**
 * Turns a growing list of token ids into text deltas. Byte-level BPE can split one character over
 * several tokens, so each step decodes a short window (from the last emitted boundary) and emits
 * only new, complete text; joined, the deltas equal decode(all ids).
 */
export class TextStreamer {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  /** Adds one token; returns the text it completes ("" while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    if (after.length <= before.length || after.endsWith("\uFFFD")) return "";
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return after.slice(before.length);
  }

  /** What is still held back at the end (an incomplete character decodes as U+FFFD). */
  flush(): string {
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : "";
  }
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

/** The logits of position `row` of a [1, seq, vocab] CPU tensor, as float32. */
function logitsRow(tensor: Ort.Tensor, row: number): Float32Array {
  const vocab = tensor.dims[2]!;
  const data = tensor.data;
  if (data instanceof Float32Array) return data.subarray(row * vocab, (row + 1) * vocab);
  const out = new Float32Array(vocab);
  const src = data as ArrayLike<number>;
  const isBits = data instanceof Uint16Array; // fp16 as raw bits
  for (let i = 0; i < vocab; i++) {
    const v = src[row * vocab + i]!;
    out[i] = isBits ? halfToFloat(v) : v;
  }
  return out;
}

interface KvSpec {
  /** past_key_values.N.{key,value} -> present.N.{key,value} */
  pastToPresent: Map<string, string>;
  type: "float32" | "float16";
  kvHeads: number;
  headDim: number;
}

function kvSpec(session: Ort.InferenceSession, entry: ModelEntry): KvSpec {
  const llm = entry.llm!;
  const pastToPresent = new Map<string, string>();
  for (const name of session.inputNames) {
    if (!name.startsWith("past_key_values.")) continue;
    const present = name.replace("past_key_values.", "present.");
    if (!session.outputNames.includes(present)) {
      throw new UnsupportedModelConfigError(`${entry.id}: input ${name} has no matching output ${present}`);
    }
    pastToPresent.set(name, present);
  }
  for (const name of ["input_ids", "attention_mask"]) {
    if (!session.inputNames.includes(name)) {
      throw new UnsupportedModelConfigError(`${entry.id}: the decoder has no ${name} input`, "re-export the model");
    }
  }
  if (pastToPresent.size !== 2 * llm.num_layers || !session.outputNames.includes("logits")) {
    throw new UnsupportedModelConfigError(
      `${entry.id}: expected logits and ${2 * llm.num_layers} past/present tensors, found ${pastToPresent.size}`,
      "export the decoder with KV cache (text-generation-with-past)");
  }
  const meta = session.inputMetadata.find((m) => m.name === pastToPresent.keys().next().value);
  const type = meta?.isTensor && meta.type === "float16" ? "float16" : "float32";
  return { pastToPresent, type, kvHeads: llm.num_kv_heads, headDim: llm.head_dim };
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

export class OnnxChatModel implements ChatModel {
  private constructor(
    readonly info: ChatModelInfo,
    private readonly runtime: Runtime,
    private readonly session: Ort.InferenceSession,
    private readonly tokenizer: ChatTokenizer,
    private readonly kv: KvSpec,
    private readonly stopIds: Set<number>,
  ) {}

  static async load(entry: ModelEntry, runtime: Runtime, pathReason: string,
    options: ChatLoadOptions = {}): Promise<OnnxChatModel> {
    if (!entry.llm) throw new ModelNotFoundError(`${entry.id} is not a chat model (task ${entry.task})`);
    const variant = pickVariant(entry, runtime, options.variant);
    const { model, data } = variantFiles(entry, variant);
    const optional = ["generation_config.json", "chat_template.jinja"]
      .map((f) => entry.files.find((e) => e.path === `${entry.id}/${f}`))
      .filter((f): f is FileEntry => f !== undefined);
    const configs = ["tokenizer.json", "tokenizer_config.json"].map((f) => fileEntry(entry, `${entry.id}/${f}`));
    const files = [model, ...data, ...configs, ...optional];
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    checkSize(entry, variant, bytes, Math.max(...files.map((f) => f.bytes)), runtime,
      options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES);

    const got = await fetchFiles(files, options.onProgress);
    const text = (path: string) => new TextDecoder().decode(got.get(path));
    const tokenizer = new ChatTokenizer(
      decodeJson<object>(got.get(configs[0]!.path), configs[0]!.path),
      decodeJson<TokenizerConfig>(got.get(configs[1]!.path), configs[1]!.path),
      got.has(`${entry.id}/chat_template.jinja`) ? text(`${entry.id}/chat_template.jinja`) : undefined,
    );
    const stopIds = new Set(entry.llm.eos_token_ids);
    const generationConfig = `${entry.id}/generation_config.json`;
    if (got.has(generationConfig)) {
      const eos = decodeJson<{ eos_token_id?: number | number[] }>(got.get(generationConfig), generationConfig).eos_token_id;
      for (const id of [eos ?? []].flat()) stopIds.add(id);
    }
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
    if (expand) {
      const expanded = dequantizeMatMulNBits(modelBytes);
      if (expanded) {
        modelBytes = expanded.bytes;
        weights = `, ${expanded.nodes} MatMulNBits expanded to ${expanded.matmuls} fp32 MatMuls at load`;
      }
    }
    if (expand) preparing(1);
    const session = await createDecoderSession(runtime, entry, modelBytes, data.map((f) => ({
      path: basename(f.path), data: got.get(f.path)!,
    })), model.path);
    const kv = kvSpec(session, entry);
    const threads = runtime.name === "wasm" ? `, ${runtime.threads} thread${runtime.threads === 1 ? "" : "s"}` : "";
    const info: ChatModelInfo = {
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
    };
    return new OnnxChatModel(info, runtime, session, tokenizer, kv, stopIds);
  }

  async generate(params: GenerationParams, onEvent: (event: GenerationEvent) => void,
    shouldStop: () => boolean): Promise<GenerationResult> {
    const { ort } = this.runtime;
    const promptIds = this.tokenizer.promptIds(params.messages);
    const room = this.info.contextLength - promptIds.length;
    if (room < 1) {
      throw new InvalidRequestError(
        `the prompt has ${promptIds.length} tokens; ${this.info.id} reads at most ${this.info.contextLength}`,
        "shorten the conversation (drop older messages)");
    }
    const maxNew = Math.min(params.max_tokens, room);
    const rng = new SeededRandom(params.seed);
    const streamer = new TextStreamer((ids) => this.tokenizer.decode(ids));
    const hasPositions = this.session.inputNames.includes("position_ids");

    // Empty cache [1, kv_heads, 0, head_dim]: the prompt's first pass attends to nothing before it.
    const emptyData = this.kv.type === "float16" ? new Uint16Array(0) : new Float32Array(0);
    let past = new Map<string, Ort.Tensor>();
    for (const name of this.kv.pastToPresent.keys()) {
      past.set(name, new ort.Tensor(this.kv.type, emptyData, [1, this.kv.kvHeads, 0, this.kv.headDim]));
    }
    const tokenIds: number[] = [];
    let stepIds = promptIds;
    let cached = 0;
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
        const token = sampleToken(logits, params.temperature, params.top_p, rng);
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

        const stop = this.stopIds.has(token);
        const delta = stop ? "" : streamer.push(token);
        onEvent({ delta, tokenIds: [token], logprobs: this.logprobs(logits, token, params.top_logprobs) });
        if (stop) {
          finishReason = "stop";
          break;
        }
        await yieldToEventLoop();
      }
    } finally {
      releaseGpu(past);
    }
    const tail = streamer.flush();
    if (tail) onEvent({ delta: tail, tokenIds: [] });
    const textIds = finishReason === "stop" ? tokenIds.slice(0, -1) : tokenIds;
    const decodeTokens = tokenIds.length - 1;
    return {
      text: this.tokenizer.decode(textIds),
      finishReason,
      promptTokenIds: promptIds,
      tokenIds,
      usage: {
        prompt_tokens: promptIds.length,
        completion_tokens: tokenIds.length,
        total_tokens: promptIds.length + tokenIds.length,
        extra: {
          runtime: this.info.runtime,
          prefill_ms: prefillMs,
          decode_ms: decodeMs,
          prefill_tokens_per_s: prefillMs > 0 ? (promptIds.length / prefillMs) * 1000 : 0,
          decode_tokens_per_s: decodeMs > 0 ? (decodeTokens / decodeMs) * 1000 : 0,
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
    await this.session.release();
  }
}

/** KV tensors that live in GPU buffers are freed by hand; CPU ones are ordinary garbage. */
function releaseGpu(tensors: Map<string, Ort.Tensor>): void {
  for (const t of tensors.values()) if (t.location === "gpu-buffer") t.dispose();
}

async function createDecoderSession(runtime: Runtime, entry: ModelEntry, bytes: Uint8Array,
  externalData: Array<{ path: string; data: Uint8Array }>, what: string): Promise<Ort.InferenceSession> {
  const options: Ort.InferenceSession.SessionOptions = {
    executionProviders: runtime.executionProviders,
    graphOptimizationLevel: "all",
    freeDimensionOverrides: { batch_size: 1 },
    // onnxruntime's C++ warnings (e.g. shape ops placed on the CPU next to WebGPU) reach console.error.
    logSeverityLevel: 3,
    ...(externalData.length > 0 && { externalData }),
  };
  if (runtime.name === "webgpu") {
    // Keep the KV cache on the GPU between steps; logits (one row read per step) come to the CPU.
    const locations: Record<string, Ort.Tensor.DataLocation> = { logits: "cpu" };
    for (let layer = 0; layer < entry.llm!.num_layers; layer++) {
      locations[`present.${layer}.key`] = locations[`present.${layer}.value`] = "gpu-buffer";
    }
    options.preferredOutputLocation = locations;
  }
  try {
    return await runtime.ort.InferenceSession.create(bytes, options);
  } catch (err) {
    throw new InferenceError(`onnxruntime-web (${runtime.name}) cannot load ${what}: ${String(err)}`,
      runtime.name === "webgpu" ? "retry with the WASM runtime" : "re-export the model");
  }
}

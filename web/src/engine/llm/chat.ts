// The OpenAI-shaped chat API on the main thread: request/completion/chunk types, request checks,
// and `chat.completions.create`, which runs generation in the worker through a ChatTransport.
// Shapes follow OpenAI's chat.completions (as WebLLM and Transformers.js do), so code written for
// either runs here. Extensions, vLLM-style: `prompt_token_ids`, `choices[].token_ids`,
// `token_id` in logprobs, and timings in `usage.extra` (as WebLLM reports them).

import { checkStreamOptions, checkSupportedFields } from "./openai_params";
import { choiceCount, combinedUsage } from "./choices";
import { MAX_STOP_STRINGS } from "./stop_strings";
import { logitAdjustments, type LogitAdjustments } from "./logit_adjust";
import { toolPlan, toolReply, type ToolCall, type ToolChoice, type ToolDefinition, type ToolReply } from "./tools";
import { grammarSpec, type GrammarSpec, type ResponseFormat } from "./response_format";

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatCompletionRequest {
  messages: ChatMessage[];
  stream?: boolean;
  /** New tokens at most (default 256); the context length caps it too. */
  max_tokens?: number;
  /** 0 means greedy (argmax); default 0.7. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1]; default 1. */
  top_p?: number;
  /** Same seed, same request, same model file -> same tokens. */
  seed?: number;
  /** Return each chosen token's log-probability (of the model's distribution, before temperature). */
  logprobs?: boolean;
  /** With logprobs: also the this-many most likely tokens at each step (0-20). */
  top_logprobs?: number;
  /** Constrain the reply: {type: "json_object"}, {type: "json_schema", json_schema}, {type: "grammar", grammar}. */
  response_format?: ResponseFormat;
  /** Up to 4 strings: the reply ends just before the first one generated (finish_reason "stop"). */
  stop?: string | string[] | null;
  /** token id -> bias in [-100, 100], added to its logit (-100 bans it in practice). */
  logit_bias?: Record<string, number>;
  /** In [-2, 2]: subtracted from the logit of every token already generated. */
  presence_penalty?: number;
  /** In [-2, 2]: times how often a token was generated, subtracted from its logit. */
  frequency_penalty?: number;
  /** Functions the model may call; the call is generated under a schema built from them. */
  tools?: ToolDefinition[];
  /** "auto" | "none" | "required" | {type: "function", function: {name}}; default "required" with tools. */
  tool_choice?: ToolChoice;
  /**
   * Reuse the KV cache of the previous request for the prompt prefix they share (default true;
   * llama.cpp's name for it). false prefills the whole prompt: same tokens, slower.
   */
  cache_prompt?: boolean;
  /**
   * How many replies to generate (1-8, default 1), one after another, each with its own seed
   * (seed, seed + 1, ...); the prompt's KV cache is reused by the 2nd and later. Not with stream.
   */
  n?: number;
  /** {include_usage}: accepted; the final chunk always carries usage. */
  stream_options?: { include_usage?: boolean };
  /** Echoed only: the engine serves the model it loaded. */
  model?: string;
  /** Aborting stops generation in the worker; the call (or the stream) rejects with an AbortError. */
  signal?: AbortSignal;
}

/** What crosses the worker boundary: the checked request with defaults filled in. */
export interface GenerationParams {
  messages: ChatMessage[];
  max_tokens: number;
  temperature: number;
  top_p: number;
  seed: number;
  /** -1: no logprobs; 0..20: logprobs with that many alternatives. */
  top_logprobs: number;
  /** The grammar the reply must follow (response_format), or null for free text. */
  grammar: GrammarSpec | null;
  /** Stop strings (may be empty). */
  stop: string[];
  /** logit_bias, presence_penalty, frequency_penalty */
  adjust: LogitAdjustments;
  /** How the reply carries a tool call: none, the whole reply as JSON, or inside <tool_call> tags (tool_choice "auto"). */
  toolCall: ToolReply;
  /** Reuse the previous request's KV cache for the shared prompt prefix. */
  cachePrompt: boolean;
}

export type FinishReason = "stop" | "length" | "tool_calls";

export interface UsageExtra {
  /** Which engine produced the tokens, e.g. "onnxruntime-web wasm, 2 threads, variant q8". */
  runtime: string;
  prefill_ms: number;
  decode_ms: number;
  /** Prompt tokens run through the model (onnxruntime-web path); the rest came from the KV cache. */
  prefill_tokens?: number;
  /** Prompt tokens whose keys and values were reused from the previous request (= cached_tokens). */
  prefill_tokens_saved?: number;
  prefill_tokens_per_s: number;
  /** Tokens after the first, over the time spent producing them. */
  decode_tokens_per_s: number;
  /** With response_format: time spent computing and applying grammar masks, in all and per step. */
  grammar_mask_ms?: number;
  grammar_mask_ms_per_token?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** OpenAI's field: cached_tokens = prompt tokens reused from the KV cache (onnxruntime-web path). */
  prompt_tokens_details?: { cached_tokens: number };
  extra?: UsageExtra;
}

export interface TopLogprob {
  token: string;
  token_id: number;
  logprob: number;
}

export interface TokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  prompt_token_ids: number[];
  choices: Array<{
    index: number;
    message: { role: "assistant"; content: string | null; tool_calls?: ToolCall[] };
    finish_reason: FinishReason;
    token_ids: number[];
    logprobs: { content: TokenLogprob[] } | null;
  }>;
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: "assistant"; content?: string };
    finish_reason: FinishReason | null;
    token_ids?: number[];
    logprobs?: { content: TokenLogprob[] } | null;
  }>;
  /** Only on the final chunk. */
  usage?: Usage;
}

/** One decode step as the worker reports it: the text it completed (may be "") and its token. */
export interface GenerationEvent {
  delta: string;
  tokenIds: number[];
  logprobs?: TokenLogprob[];
}

/** How generation ended, reported once after the last event. */
export interface GenerationResult {
  /** decode(all new tokens) in one go; the joined deltas equal it. */
  text: string;
  finishReason: FinishReason;
  promptTokenIds: number[];
  tokenIds: number[];
  usage: Usage;
}

/** The worker side of a chat request, as api.ts provides it. */
export interface ChatTransport {
  /** The loaded chat model's id (rejects with ModelNotLoadedError where none is). */
  modelId(): string;
  generate(params: GenerationParams, onEvent: (event: GenerationEvent) => void): {
    result: Promise<GenerationResult>;
    /** Asks the worker to stop after the current step; `result` then rejects with an AbortError. */
    abort(): void;
  };
}

export const DEFAULT_MAX_TOKENS = 256;
export const DEFAULT_TEMPERATURE = 0.7;
const MAX_TOP_LOGPROBS = 20;
/** Checks a request and fills defaults; throws `invalid(message)` naming the bad field. */
export function normalizeRequest(req: ChatCompletionRequest, invalid: (message: string, fix?: string) => Error): GenerationParams {
  if (!req || !Array.isArray(req.messages) || req.messages.length === 0) throw invalid("messages must be a non-empty array");
  checkSupportedFields(req, invalid);
  checkStreamOptions(req.stream_options, invalid);
  choiceCount(req, invalid);
  for (const [i, m] of req.messages.entries()) {
    if (!m || !["system", "user", "assistant"].includes(m.role)) {
      throw invalid(`messages[${i}].role must be "system", "user" or "assistant"`);
    }
    if (typeof m.content !== "string") throw invalid(`messages[${i}].content must be a string`);
  }
  const max_tokens = req.max_tokens ?? DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(max_tokens) || max_tokens < 1) throw invalid(`max_tokens must be a positive integer, got ${max_tokens}`);
  const temperature = req.temperature ?? DEFAULT_TEMPERATURE;
  if (!(temperature >= 0 && temperature <= 2)) throw invalid(`temperature must be in [0, 2], got ${temperature}`);
  const top_p = req.top_p ?? 1;
  if (!(top_p > 0 && top_p <= 1)) throw invalid(`top_p must be in (0, 1], got ${top_p}`);
  const seed = req.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
  if (!Number.isInteger(seed)) throw invalid(`seed must be an integer, got ${seed}`);
  const top = req.top_logprobs ?? 0;
  if (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS) {
    throw invalid(`top_logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${top}`);
  }
  if (req.top_logprobs !== undefined && !req.logprobs) throw invalid("top_logprobs needs logprobs: true");
  const asked = req.messages.map((m) => ({ role: m.role, content: m.content }));
  const tools = toolPlan(req, asked, invalid);
  const messages = tools?.messages ?? asked;
  const grammar = tools?.grammar ?? grammarSpec(req.response_format, invalid);
  const stop = req.stop === undefined || req.stop === null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop;
  if (!Array.isArray(stop) || stop.length > MAX_STOP_STRINGS || stop.some((s) => typeof s !== "string" || s === "")) {
    throw invalid(`stop must be a non-empty string or a list of at most ${MAX_STOP_STRINGS}, got ${JSON.stringify(req.stop)}`);
  }
  const adjust = logitAdjustments(req, invalid);
  if (req.cache_prompt !== undefined && typeof req.cache_prompt !== "boolean") {
    throw invalid(`cache_prompt must be a boolean, got ${JSON.stringify(req.cache_prompt)}`,
      "pass true (reuse the shared prompt prefix, the default) or false (prefill the whole prompt)");
  }
  return { messages, max_tokens, temperature, top_p, seed, top_logprobs: req.logprobs ? top : -1, grammar, stop, adjust,
    toolCall: tools?.reply ?? "none", cachePrompt: req.cache_prompt ?? true };
}

function abortError(): DOMException {
  return new DOMException("the chat request was aborted", "AbortError");
}

let completionCounter = 0;

function newCompletionId(): string {
  completionCounter += 1;
  return `chatcmpl-${Date.now().toString(36)}${completionCounter.toString(36)}`;
}

/** `engine.chat.completions`: create() answers a ChatCompletion, or with stream: true a chunk stream. */
export class ChatCompletions {
  constructor(private readonly transport: ChatTransport, private readonly invalid: (message: string, fix?: string) => Error) {}

  create(request: ChatCompletionRequest & { stream: true }): Promise<ChatCompletionStream>;
  create(request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
  create(request: ChatCompletionRequest): Promise<ChatCompletion | ChatCompletionStream>;
  async create(request: ChatCompletionRequest): Promise<ChatCompletion | ChatCompletionStream> {
    const params = normalizeRequest(request, this.invalid);
    const model = this.transport.modelId();
    if (request.signal?.aborted) throw abortError();
    const meta = { id: newCompletionId(), created: Math.floor(Date.now() / 1000), model };
    if (request.stream) return new ChatCompletionStream(this.transport, params, meta, request.signal);

    const n = choiceCount(request, this.invalid);
    const choices: ChatCompletion["choices"] = [];
    const usages: Usage[] = [];
    let promptTokenIds: number[] = [];
    for (let index = 0; index < n; index++) {
      // Each reply its own seed: n samples, not n copies (at temperature 0 they are the same).
      const result = await this.runOne({ ...params, seed: params.seed + index }, request.signal);
      const { content, call } = result.finishReason === "stop" ? toolReply(result.text, params.toolCall)
        : { content: result.text, call: null };
      choices.push({
        index,
        message: call ? { role: "assistant", content, tool_calls: [call] } : { role: "assistant", content: result.text },
        finish_reason: call ? "tool_calls" : result.finishReason,
        token_ids: result.tokenIds,
        logprobs: params.top_logprobs >= 0 ? { content: result.logprobs } : null,
      });
      usages.push(result.usage);
      promptTokenIds = result.promptTokenIds;
    }
    return { ...meta, object: "chat.completion", prompt_token_ids: promptTokenIds, choices, usage: combinedUsage(usages) };
  }

  private async runOne(params: GenerationParams, signal?: AbortSignal): Promise<GenerationResult & { logprobs: TokenLogprob[] }> {
    if (signal?.aborted) throw abortError();
    const logprobs: TokenLogprob[] = [];
    const run = this.transport.generate(params, (event) => logprobs.push(...(event.logprobs ?? [])));
    const onAbort = () => run.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return { ...(await run.result), logprobs };
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

type Meta = { id: string; created: number; model: string };

/**
 * The chunks of one streamed completion, as an async iterable: a first chunk with the role, one
 * per decode step that completes text, and a final one with finish_reason and usage. Leaving a
 * `for await` loop early (break, return, throw) stops generation in the worker; so does the signal,
 * which also makes the iteration reject with an AbortError.
 */
export class ChatCompletionStream implements AsyncIterable<ChatCompletionChunk> {
  private readonly queue: ChatCompletionChunk[] = [];
  private wake: (() => void) | null = null;
  private finished = false;
  private failure: unknown = null;
  private readonly stop: () => void;

  constructor(transport: ChatTransport, params: GenerationParams, private readonly meta: Meta, signal?: AbortSignal) {
    this.push({ role: "assistant", content: "" }, null);
    const run = transport.generate(params, (event) => {
      const logprobs = params.top_logprobs >= 0 ? { content: event.logprobs ?? [] } : undefined;
      this.push({ content: event.delta }, null, { token_ids: event.tokenIds, ...(logprobs && { logprobs }) });
    });
    const onAbort = () => {
      run.abort();
      this.end(abortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    this.stop = () => {
      signal?.removeEventListener("abort", onAbort);
      run.abort();
    };
    run.result.then(
      (result) => {
        signal?.removeEventListener("abort", onAbort);
        this.push({}, result.finishReason, {}, result.usage);
        this.end(null);
      },
      (err: unknown) => {
        signal?.removeEventListener("abort", onAbort);
        this.end(err);
      },
    );
  }

  private push(delta: ChatCompletionChunk["choices"][0]["delta"], finish: FinishReason | null,
    extra: Partial<ChatCompletionChunk["choices"][0]> = {}, usage?: Usage): void {
    if (this.finished) return;
    this.queue.push({
      ...this.meta,
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta, finish_reason: finish, ...extra }],
      ...(usage && { usage }),
    });
    this.wake?.();
  }

  private end(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = err;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ChatCompletionChunk> {
    try {
      for (;;) {
        const chunk = this.queue.shift();
        if (chunk) {
          yield chunk;
          continue;
        }
        if (this.finished) {
          if (this.failure) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
      }
    } finally {
      if (!this.finished) {
        this.finished = true;
        this.stop(); // the consumer left early: stop the worker's loop
      }
    }
  }
}

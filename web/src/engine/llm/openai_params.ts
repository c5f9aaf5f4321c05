// Which OpenAI chat.completions request fields the engine honours. A field it would ignore is an
// error that names it and lists what is supported: a caller must never believe `tools` or `stop`
// shaped the reply when they did not. (WebLLM's coverage for comparison: README "OpenAI API coverage".)

/** Fields honoured as OpenAI defines them, plus `signal` (abort), the echoed `model` and llama.cpp's `cache_prompt`. */
export const SUPPORTED_FIELDS = [
  "messages", "stream", "stream_options", "max_tokens", "temperature", "top_p", "seed", "logprobs", "top_logprobs",
  "response_format", "stop", "logit_bias", "presence_penalty", "frequency_penalty", "tools", "tool_choice",
  "model", "signal", "cache_prompt", "n",
] as const;

/** Throws `invalid(message, fix)` for the first request field the engine would not honour. */
export function checkSupportedFields(request: object, invalid: (message: string, fix?: string) => Error): void {
  const supported = new Set<string>(SUPPORTED_FIELDS);
  const unsupported = Object.entries(request)
    .filter(([key, value]) => value !== undefined && !supported.has(key))
    .map(([key]) => key);
  if (unsupported.length === 0) return;
  throw invalid(`unsupported request field${unsupported.length > 1 ? "s" : ""}: ${unsupported.join(", ")}`,
    `remove ${unsupported.length > 1 ? "them" : "it"}; supported: ${SUPPORTED_FIELDS.join(", ")}`);
}

/** `stream_options`: {include_usage?: boolean}; usage always comes on the final chunk here. */
export function checkStreamOptions(value: unknown, invalid: (message: string, fix?: string) => Error): void {
  if (value === undefined || value === null) return;
  const ok = typeof value === "object" && !Array.isArray(value)
    && Object.entries(value).every(([k, v]) => k === "include_usage" && typeof v === "boolean");
  if (!ok) throw invalid(`stream_options must be {include_usage: boolean}, got ${JSON.stringify(value)}`);
}

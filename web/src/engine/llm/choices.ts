// `n` > 1: several replies to one request, generated one after another (each its own seed), and
// their usage counted as OpenAI counts it.

import type { ChatCompletionRequest, Usage } from "./chat";

/** n at most: each reply is a full generation on one device, one after another. */
export const MAX_CHOICES = 8;

/** `n`, checked: how many independent replies one request asks for. */
export function choiceCount(req: ChatCompletionRequest, invalid: (message: string, fix?: string) => Error): number {
  const n = req.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_CHOICES) throw invalid(`n must be an integer in [1, ${MAX_CHOICES}], got ${n}`,
      `ask for at most ${MAX_CHOICES} replies per request (each is a full generation on this device)`);
  if (n > 1 && req.stream) {
    throw invalid("n > 1 cannot be streamed here", "call without stream: true, or stream n requests one after another");
  }
  return n;
}

/**
 * One usage for n replies, as OpenAI counts them: the prompt once, the completions summed. The
 * engine-side figures in `extra` (prefill counts and times) add up over the n generations;
 * cached_tokens is the first reply's (the later ones reuse the prompt's cache: see extra).
 */
export function combinedUsage(usages: Usage[]): Usage {
  const [first, ...rest] = usages;
  if (!first || rest.length === 0) return first!;
  const completion = usages.reduce((s, u) => s + u.completion_tokens, 0);
  const sum = (key: "prefill_ms" | "decode_ms" | "prefill_tokens" | "prefill_tokens_saved") =>
    usages.reduce((s, u) => s + (u.extra?.[key] ?? 0), 0);
  return {
    ...first,
    completion_tokens: completion,
    total_tokens: first.prompt_tokens + completion,
    ...(first.extra && { extra: { ...first.extra, prefill_ms: sum("prefill_ms"), decode_ms: sum("decode_ms"),
      ...(first.extra.prefill_tokens !== undefined && { prefill_tokens: sum("prefill_tokens"),
        prefill_tokens_saved: sum("prefill_tokens_saved") }) } }),
  };
}

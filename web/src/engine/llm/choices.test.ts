// n > 1: the count is checked, and usage counts the prompt once and the completions summed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { choiceCount, combinedUsage } from "./choices";
import type { Usage } from "./chat";

const invalid = (message: string) => new Error(message);
const messages = [{ role: "user" as const, content: "hi" }];

test("n is 1-8, and not streamed", () => {
  assert.equal(choiceCount({ messages }, invalid), 1);
  assert.equal(choiceCount({ messages, n: 3 }, invalid), 3);
  assert.throws(() => choiceCount({ messages, n: 0 }, invalid), /n must be an integer in \[1, 8\], got 0/);
  assert.throws(() => choiceCount({ messages, n: 2.5 }, invalid), /n must be an integer/);
  assert.throws(() => choiceCount({ messages, n: 9 }, invalid), /got 9/);
  assert.throws(() => choiceCount({ messages, n: 2, stream: true }, invalid), /n > 1 cannot be streamed/);
  assert.equal(choiceCount({ messages, n: 1, stream: true }, invalid), 1);
});

test("usage of n replies: the prompt once, completions and engine work summed", () => {
  const usage = (completion: number, cached: number): Usage => ({
    prompt_tokens: 10, completion_tokens: completion, total_tokens: 10 + completion,
    prompt_tokens_details: { cached_tokens: cached },
    extra: { runtime: "wasm", prefill_ms: 5, decode_ms: 20, prefill_tokens: 10 - cached, prefill_tokens_saved: cached,
      prefill_tokens_per_s: 1, decode_tokens_per_s: 1 },
  });
  const one = usage(4, 0);
  assert.equal(combinedUsage([one]), one);
  const all = combinedUsage([usage(4, 0), usage(6, 9), usage(2, 9)]);
  assert.equal(all.prompt_tokens, 10);
  assert.equal(all.completion_tokens, 12);
  assert.equal(all.total_tokens, 22);
  assert.deepEqual(all.prompt_tokens_details, { cached_tokens: 0 });
  assert.equal(all.extra!.prefill_tokens, 12);
  assert.equal(all.extra!.prefill_tokens_saved, 18);
  assert.equal(all.extra!.decode_ms, 60);
});

// Request checks: every bad field is named; defaults fill the rest.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type ChatCompletionRequest, normalizeRequest } from "./chat";

const invalid = (message: string) => new Error(message);
const msgs = [{ role: "user" as const, content: "hi" }];

function errorOf(run: () => unknown): string | null {
  try {
    run();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

test("each bad field is refused with its name", () => {
  const bad: Record<string, unknown> = {
    messages: { messages: [] },
    role: { messages: [{ role: "robot", content: "x" }] },
    content: { messages: [{ role: "user", content: 3 }] },
    max_tokens: { messages: msgs, max_tokens: 0 },
    temperature: { messages: msgs, temperature: 2.5 },
    top_p: { messages: msgs, top_p: 0 },
    seed: { messages: msgs, seed: 1.5 },
    top_logprobs: { messages: msgs, top_logprobs: 3 },
  };
  const messages = Object.entries(bad).map(([name, req]) => {
    const message = errorOf(() => normalizeRequest(req as ChatCompletionRequest, invalid));
    assert.ok(message !== null, `${name} was accepted`);
    return message;
  });
  for (const field of Object.keys(bad)) {
    assert.ok(messages.some((m) => m.includes(field)), `no error names ${field}: ${messages.join(" / ")}`);
  }
});

test("defaults: 256 tokens, temperature 0.7, top_p 1, no alternatives, an integer seed", () => {
  const ok = normalizeRequest({ messages: msgs, logprobs: true }, invalid);
  assert.equal(ok.max_tokens, 256);
  assert.equal(ok.temperature, 0.7);
  assert.equal(ok.top_p, 1);
  assert.equal(ok.top_logprobs, 0);
  assert.ok(Number.isInteger(ok.seed));
});

// FuDD's prompt and parser on their own (the Python parity of the same cases: tests/test_browser_fudd.py).
import assert from "node:assert/strict";
import { test } from "node:test";
import promptData from "../../../../contract/fudd_prompt.json";
import { fill, FuddPrompt, type FuddPromptData } from "./fudd";

const prompt = new FuddPrompt(promptData as FuddPromptData);

test("fill substitutes each placeholder once, so a label holding {b} stays as written", () => {
  assert.equal(fill("{a} vs {b}", { a: "odd {b} label", b: "dog" }), "odd {b} label vs dog");
  assert.equal(fill("{unknown} {n}", { n: "3" }), "{unknown} 3");
});

test("the prompt names both labels and the number of lines", () => {
  const text = prompt.messages("cat", "dog", 3).map((m) => m.content).join("\n");
  assert.match(text, /cat/);
  assert.match(text, /dog/);
  assert.ok(!/\{a\}|\{b\}/.test(text), "placeholders left in the prompt");
});

test("well-formed lines become pairs; at most n; empty or echoed lines never do", () => {
  const good = prompt.parse("1. pointy ears | floppy ears\n2. long whiskers | wet nose\n3. green eyes | brown eyes\n4. a | b",
    "cat", "dog", 3);
  assert.ok(good.pairs.length > 0 && good.pairs.length <= 3, JSON.stringify(good));
  assert.deepEqual(good.pairs[0], ["pointy ears", "floppy ears"]);
  const bad = prompt.parse("Sure! I can help with that.\n\n", "cat", "dog", 3);
  assert.equal(bad.pairs.length, 0);
  assert.ok(bad.rejected.length > 0, "a line that is not a pair is reported, not dropped silently");
});

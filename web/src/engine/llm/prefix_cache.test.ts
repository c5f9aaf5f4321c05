// Prefix reuse: how much of a new prompt the last request's cache can supply, and cutting a KV tensor.
import assert from "node:assert/strict";
import { test } from "node:test";
import { commonPrefixLength, reusableLength, sliceSequence } from "./prefix_cache";

test("the common prefix stops at the first differing id", () => {
  assert.equal(commonPrefixLength([1, 2, 3, 4], [1, 2, 9, 4]), 2);
  assert.equal(commonPrefixLength([1, 2], [1, 2, 3]), 2);
  assert.equal(commonPrefixLength([], [1]), 0);
  assert.equal(commonPrefixLength([5], [6]), 0);
});

test("at least one prompt token is always prefilled", () => {
  // The cache holds the whole prompt (a repeated request): all but its last token are reused.
  assert.equal(reusableLength([1, 2, 3, 7, 8], [1, 2, 3]), 2);
  // The next turn extends the cache: all of it is reused.
  assert.equal(reusableLength([1, 2, 3], [1, 2, 3, 4, 5]), 3);
  // Diverging prompts reuse only what they share.
  assert.equal(reusableLength([1, 2, 3, 4], [1, 2, 9, 9]), 2);
  assert.equal(reusableLength([4], [1, 2]), 0);
  assert.equal(reusableLength([1], [1]), 0);
});

test("cutting [1, heads, seq, dim] keeps each head's first positions", () => {
  const heads = 2, seq = 3, dim = 2;
  // value = head * 100 + position * 10 + d
  const data = Float32Array.from({ length: heads * seq * dim }, (_, i) => {
    const h = Math.floor(i / (seq * dim)), p = Math.floor((i % (seq * dim)) / dim), d = i % dim;
    return h * 100 + p * 10 + d;
  });
  assert.deepEqual([...sliceSequence(data, heads, seq, dim, 2)], [0, 1, 10, 11, 100, 101, 110, 111]);
  const bits = sliceSequence(Uint16Array.from(data), heads, seq, dim, 1);
  assert.ok(bits instanceof Uint16Array);
  assert.deepEqual([...bits], [0, 1, 100, 101]);
});

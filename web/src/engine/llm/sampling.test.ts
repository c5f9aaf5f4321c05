// Sampling: greedy at temperature 0, replayable from a seed, inside the nucleus, sharper when cold.
import assert from "node:assert/strict";
import { test } from "node:test";
import { argmax, SeededRandom, sampleToken, topIndices } from "./sampling";

// probabilities 0.4, 0.3, 0.2, 0.1
const logits = Float32Array.from([0.4, 0.3, 0.2, 0.1].map(Math.log));
const N = 40000;
// 3 standard deviations of a binomial count, at most sqrt(n * 0.25).
const TOL = 3 * Math.sqrt(N * 0.25);

function draw(seed: number, n: number, temperature: number, topP: number): number[] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: n }, () => sampleToken(logits, temperature, topP, rng));
}

function counts(tokens: number[]): number[] {
  return [0, 1, 2, 3].map((i) => tokens.filter((t) => t === i).length);
}

function assertNear(got: number[], want: number[]): void {
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < TOL, `token ${i}: ${g} vs ${want[i]}`));
}

test("temperature 0 is greedy; ties go to the first index", () => {
  assert.equal(sampleToken(logits, 0, 1, new SeededRandom(1)), 0);
  assert.equal(argmax(Float32Array.from([1, 5, 5, 2])), 1);
  assert.deepEqual(Array.from(topIndices(Float64Array.from([0.1, 0.5, 0.5, 0.3]), 3)), [1, 2, 3]);
});

test("a seed replays the same draws; another seed does not", () => {
  assert.deepEqual(draw(7, 50, 1, 1), draw(7, 50, 1, 1));
  assert.notDeepEqual(draw(7, 50, 1, 1), draw(8, 50, 1, 1));
});

test("draws follow the distribution, the nucleus and the temperature", () => {
  assertNear(counts(draw(1, N, 1, 1)), [0.4, 0.3, 0.2, 0.1].map((p) => N * p));
  // top_p 0.65: the nucleus is {0, 1} (0.4 + 0.3 >= 0.65), renormalized to 4/7 and 3/7.
  const nucleus = counts(draw(2, N, 1, 0.65));
  assert.deepEqual(nucleus.slice(2), [0, 0]);
  assert.ok(Math.abs(nucleus[0]! - (N * 4) / 7) < TOL);
  // temperature 0.5 squares the probabilities: 16:9:4:1 of 30.
  assertNear(counts(draw(3, N, 0.5, 1)), [16, 9, 4, 1].map((w) => (N * w) / 30));
});

// The engine's request checks: each bad field is a named InvalidRequestError; valid requests pass.
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidRequestError } from "./errors";
import { checkClassifyRequest, checkStrings } from "./validate";

const images = ["data:image/png;base64,iVBORw0KGgo="];

test("labels must be non-empty strings unless a few-shot classifier brings its own", () => {
  assert.throws(() => checkClassifyRequest({ images, labels: [] }), (e) => e instanceof InvalidRequestError && /labels is empty/.test(e.message));
  assert.throws(() => checkClassifyRequest({ images, labels: [""] }), InvalidRequestError);
  assert.doesNotThrow(() => checkClassifyRequest({ images, labels: ["a cat"] }));
  assert.doesNotThrow(() => checkClassifyRequest({ images, labels: [], classifier: "id-1" }));
  assert.doesNotThrow(() => checkClassifyRequest({ images, labels: ["a cat"], classifier: "id-1" }));
  assert.throws(() => checkClassifyRequest({ images, labels: [" "], classifier: "id-1" }), InvalidRequestError);
});

test("a classifier must be an id string", () => {
  for (const classifier of ["", 3, null]) {
    assert.throws(() => checkClassifyRequest({ images, labels: [], classifier }),
      (e) => e instanceof InvalidRequestError && /classifier must be/.test(e.message));
  }
});

test("texts to embed may be blank (the tokenizer gives the special tokens); labels may not", () => {
  assert.doesNotThrow(() => checkStrings(["", "a cat"], "texts", true));
  assert.throws(() => checkStrings(["", "a cat"], "labels"), (e) => e instanceof InvalidRequestError && /labels\[0\]/.test(e.message));
  assert.throws(() => checkStrings([null], "texts", true), InvalidRequestError);
  assert.throws(() => checkStrings([], "texts", true), InvalidRequestError);
});

// Errors cross the worker boundary as plain data and come back as the same named class with its fix.
import assert from "node:assert/strict";
import { test } from "node:test";
import { EngineError, ModelNotFoundError, reviveError, serializeError, StorageQuotaError } from "./errors";

test("a named error survives the round trip with its class, message and fix", () => {
  const back = reviveError(serializeError(new ModelNotFoundError("no model x", "export it first")));
  assert.ok(back instanceof ModelNotFoundError);
  assert.equal(back.name, "ModelNotFoundError");
  assert.equal(back.message, "no model x");
  assert.equal(back.fix, "export it first");
  assert.ok(reviveError(serializeError(new StorageQuotaError("full", "free space"))) instanceof StorageQuotaError);
});

test("anything else becomes an EngineError that still says what it was", () => {
  const plain = reviveError(serializeError(new TypeError("bad")));
  assert.equal(plain.constructor, EngineError);
  assert.match(plain.message, /TypeError: bad/);
  assert.equal(reviveError({ name: "NoSuchError", message: "m" }).constructor, EngineError);
  assert.equal(reviveError(serializeError("a string")).message, "a string");
});

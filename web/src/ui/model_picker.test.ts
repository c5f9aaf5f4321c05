// The pickers' labels: size of the default download, and "cached" only when all of it is here.
import assert from "node:assert/strict";
import { test } from "node:test";
import { cacheState, pickerLabel } from "./model_picker";

const download = (bytes: number, cachedBytes: number) => ({ id: "m", variant: "q4", bytes, cachedBytes });

test("a model is cached only when every byte of its download is", () => {
  assert.equal(cacheState(download(1_234_567, 1_234_567)), "cached");
  assert.equal(cacheState(download(1_234_567, 1)), "partly cached");
  assert.equal(cacheState(download(1_234_567, 0)), "not cached");
  assert.equal(cacheState(download(0, 0)), "not cached");
});

test("the label adds the size in MB and the cache state, and leaves unknown models alone", () => {
  assert.equal(pickerLabel("clip · CLIP", download(1_234_567, 1_234_567)), "clip · CLIP · 1.23 MB · cached");
  assert.equal(pickerLabel("smollm2", download(98_765_432, 0)), "smollm2 · 98.8 MB");
  assert.equal(pickerLabel("x", download(5_000_000, 10)), "x · 5.00 MB · partly cached");
  assert.equal(pickerLabel("x", undefined), "x");
});

// The Storage tab's summary: the models' bytes (each file once), then the browser's own figure and why it differs.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { StorageReport } from "../engine/api";
import { megabytes, summaryText } from "./storage";

const model = (id: string, bytes: number) => ({ id, bytes, cachedFiles: 2, totalFiles: 4, partialBytes: 0, partialFiles: 0 });
const base: StorageReport = {
  models: [model("a", 3_000_000), model("b", 2_000_000)], modelBytes: 4_000_000, partialBytes: 0, orphanBytes: 0,
  usage: 9_500_000, quota: 2_000_000_000, persisted: false, descriptions: { answers: 0, bytes: 0 },
};

test("the summary gives the models' total, says shared files are stored once, and explains the browser's figure", () => {
  const text = summaryText(base);
  assert.match(text, /^Models: 4\.00 MB stored in this browser for offline use\./);
  assert.match(text, /store it once, so the rows below add up to more/);
  assert.match(text, /The browser counts 9\.50 MB for this site in all and allows up to 2000\.0 MB: .* larger than the models alone\./);
  assert.match(text, /may clear this storage/);
});

test("unfinished downloads and unknown usage are said plainly", () => {
  const text = summaryText({ ...base, models: [model("a", 4_000_000)], partialBytes: 900_000, usage: null, persisted: true });
  assert.match(text, /plus 0\.90 MB of unfinished downloads \(they resume on the next load\)/);
  assert.doesNotMatch(text, /add up to more/);
  assert.match(text, /does not say how much it stores/);
  assert.match(text, /keeps this storage \(persistent\)/);
});

test("sizes read in MB, small ones in kB", () => {
  assert.equal(megabytes(5_439_865), "5.44 MB");
  assert.equal(megabytes(122_700_000), "122.7 MB");
  assert.equal(megabytes(100_000), "0.10 MB");
  assert.equal(megabytes(4_523), "4.5 kB");
  assert.equal(megabytes(0), "0.0 kB");
});

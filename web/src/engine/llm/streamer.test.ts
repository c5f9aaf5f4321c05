// Streaming detokenization: pieces join to the full text and never split a character.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TextStreamer } from "./streamer";

test("one piece per character, as soon as it is complete", () => {
  const text = "Héllo, 日本語 and 🙂!";
  // One token per UTF-8 byte: multi-byte characters span several tokens, as in byte-level BPE.
  const bytes = Array.from(new TextEncoder().encode(text));
  const decode = (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids));
  const streamer = new TextStreamer(decode);
  const pieces = bytes.map((b) => streamer.push(b));
  pieces.push(streamer.flush());
  assert.equal(pieces.join(""), text);
  assert.equal(decode(bytes), text);
  assert.ok(!pieces.some((p) => p.includes("\uFFFD")));
  assert.equal(pieces.filter((p) => p).length, [...text].length);
});

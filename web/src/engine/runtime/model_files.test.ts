// defaultDownload: what a load on one runtime fetches, which the model pickers size and mark cached.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelEntry } from "../manifest.gen";
import { defaultDownload } from "./model_files";

const file = (path: string, bytes: number) => ({ path, bytes, sha256: path });

test("a CLIP-family model downloads its two towers and its configs, not the combined model", () => {
  const entry = {
    id: "clip", vision: {}, defaults: { wasm: "int8", webgpu: "fp32" },
    variants: {
      fp32: { files: { vision_model: "clip/v.onnx", text_model: "clip/t.onnx", model: "clip/m.onnx" } },
      int8: { files: { vision_model: "clip/v8.onnx", text_model: "clip/t8.onnx", model: "clip/m8.onnx" } },
    },
    configs: { tokenizer: "clip/tok.json", tokenizer_config: "clip/tc.json", preprocessor: "clip/pre.json", config: "clip/config.json" },
    files: ["v.onnx", "t.onnx", "m.onnx", "v8.onnx", "t8.onnx", "m8.onnx", "tok.json", "tc.json", "pre.json", "config.json"]
      .map((name, i) => file(`clip/${name}`, 10 ** i)),
  } as unknown as ModelEntry;
  const wasm = defaultDownload(entry, "wasm");
  assert.equal(wasm.variant, "int8");
  assert.deepEqual(wasm.files.map((f) => f.path).sort(),
    ["clip/pre.json", "clip/t8.onnx", "clip/tc.json", "clip/tok.json", "clip/v8.onnx"]);
  assert.deepEqual(defaultDownload(entry, "webgpu").files.map((f) => f.path).filter((p) => p.endsWith(".onnx")).sort(),
    ["clip/t.onnx", "clip/v.onnx"]);
});

test("a chat model downloads its variant's model with every external data part and its chat configs", () => {
  const entry = {
    id: "llm", llm: {}, defaults: { wasm: "q4", webgpu: "q4" },
    variants: { q4: { files: { model: "llm/onnx/model_q4.onnx" } }, q8: { files: { model: "llm/onnx/model_q8.onnx" } } },
    configs: { tokenizer: "llm/tokenizer.json", tokenizer_config: "llm/tokenizer_config.json", chat_template: "llm/chat.jinja",
      generation_config: "llm/generation_config.json" },
    files: [file("llm/onnx/model_q4.onnx", 1), file("llm/onnx/model_q4.onnx_data", 2), file("llm/onnx/model_q4.onnx_data_1", 3),
      file("llm/onnx/model_q8.onnx", 4), file("llm/tokenizer.json", 5), file("llm/tokenizer_config.json", 6),
      file("llm/chat.jinja", 7), file("llm/generation_config.json", 8), file("llm/mlc/tokenizer.json", 9)],
  } as unknown as ModelEntry;
  const got = defaultDownload(entry, "wasm");
  assert.equal(got.variant, "q4");
  assert.equal(got.files.reduce((s, f) => s + f.bytes, 0), 1 + 2 + 3 + 5 + 6 + 7);
});

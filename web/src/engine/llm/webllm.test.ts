// Which engine generates: WebLLM only with a compiled model library, WebGPU and the features the
// build needs; otherwise onnxruntime-web, with the reason.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { LlmInfo, MlcBuild, Quantization } from "../manifest.gen";
import { planChatPath } from "./webllm";

const LLM: LlmInfo = { context_length: 2048, num_layers: 2, num_kv_heads: 1, head_dim: 8, vocab_size: 32, eos_token_ids: [2] };

function build(quantization: Quantization, built: boolean): MlcBuild {
  return {
    quantization,
    path: `m/mlc/${quantization}`,
    model_lib: built ? `m/mlc/${quantization}/lib.wasm` : null,
    model_lib_status: built ? "built" : "not built: mlc_llm is not installed",
    requires_shader_f16: quantization === "q4f16_1" || quantization === "q0f16",
  };
}

function plan(mlc: MlcBuild[] | undefined, hasGpu: boolean, features: string[], wasm: boolean) {
  const gpu = hasGpu ? { features: new Set(features) } : null;
  const p = planChatPath({ ...LLM, ...(mlc && { mlc }) }, gpu, "requestAdapter() returned null", wasm);
  return { path: p.path, quant: p.path === "webllm" ? p.build.quantization : null, reason: p.reason };
}

test("onnxruntime-web, with the reason, whenever WebLLM cannot run", () => {
  const ort = {
    noBuilds: plan(undefined, true, [], false),
    notCompiled: plan([build("q4f32_1", false)], true, ["shader-f16"], false),
    noWebgpu: plan([build("q4f32_1", true)], false, [], false),
    wasmRequested: plan([build("q4f32_1", true)], true, [], true),
    f16WithoutFeature: plan([build("q4f16_1", true)], true, [], false),
    onlyUncompiledF16Left: plan([build("q4f16_1", true), build("q4f32_1", false)], true, ["timestamp-query"], false),
  };
  for (const [name, p] of Object.entries(ort)) assert.equal(p.path, "onnxruntime-web", name);
  assert.match(ort.notCompiled.reason, /no MLC model library was compiled/);
  assert.match(ort.notCompiled.reason, /mlc_llm is not installed/);
  assert.match(ort.noWebgpu.reason, /requestAdapter\(\) returned null/);
  assert.match(ort.f16WithoutFeature.reason, /shader-f16/);
  assert.match(ort.onlyUncompiledF16Left.reason, /shader-f16/);
});

test("WebLLM with the best build the GPU can run", () => {
  const software = plan([build("q4f16_1", true), build("q4f32_1", true)], true, [], false);
  assert.deepEqual([software.path, software.quant], ["webllm", "q4f32_1"]);
  const f16 = plan([build("q4f32_1", true), build("q4f16_1", true)], true, ["shader-f16"], false);
  assert.deepEqual([f16.path, f16.quant], ["webllm", "q4f16_1"]);
});

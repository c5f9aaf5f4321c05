// The decoder's onnxruntime-web session: created with the KV cache kept where the runtime wants
// it, the past/present tensor names it was exported with, and its logits read back as float32.
//
// Speed: per step the loop makes only the three small int64 inputs; the KV cache goes from one
// run's outputs straight into the next run's inputs. On WebGPU the present.* outputs stay in GPU
// buffers (preferredOutputLocation "gpu-buffer"); only logits come to the CPU. On WASM,
// onnxruntime-web 1.30's run() copies every input into its heap and every output out of it (it
// cannot bind outputs in the WASM heap), so the cache crosses JS once per step each way: about
// 46 KB per cached token for SmolLM2-135M (30 layers x K,V x 3 heads x 64 x fp32), ~1 ms per step
// at 100 tokens. The big cost on WASM is elsewhere: see runtime/onnx_dequant.ts.

import type * as Ort from "onnxruntime-web";
import { UnsupportedModelConfigError } from "../errors";
import type { ModelEntry } from "../manifest.gen";
import { halfToFloat } from "../runtime/onnx_dequant";
import type { Runtime } from "../runtime/runtime";
import { createSession } from "../runtime/session";

/** The logits of position `row` of a [1, seq, vocab] CPU tensor, as float32. */
export function logitsRow(tensor: Ort.Tensor, row: number): Float32Array {
  const vocab = tensor.dims[2]!;
  const data = tensor.data;
  if (data instanceof Float32Array) return data.subarray(row * vocab, (row + 1) * vocab);
  const out = new Float32Array(vocab);
  const src = data as ArrayLike<number>;
  const isBits = data instanceof Uint16Array; // fp16 as raw bits
  for (let i = 0; i < vocab; i++) {
    const v = src[row * vocab + i]!;
    out[i] = isBits ? halfToFloat(v) : v;
  }
  return out;
}

export interface KvSpec {
  /** past_key_values.N.{key,value} -> present.N.{key,value} */
  pastToPresent: Map<string, string>;
  type: "float32" | "float16";
  kvHeads: number;
  headDim: number;
}

export function kvSpec(session: Ort.InferenceSession, entry: ModelEntry): KvSpec {
  const llm = entry.llm!;
  const pastToPresent = new Map<string, string>();
  for (const name of session.inputNames) {
    if (!name.startsWith("past_key_values.")) continue;
    const present = name.replace("past_key_values.", "present.");
    if (!session.outputNames.includes(present)) {
      throw new UnsupportedModelConfigError(`${entry.id}: input ${name} has no matching output ${present}`);
    }
    pastToPresent.set(name, present);
  }
  for (const name of ["input_ids", "attention_mask"]) {
    if (!session.inputNames.includes(name)) {
      throw new UnsupportedModelConfigError(`${entry.id}: the decoder has no ${name} input`, "re-export the model");
    }
  }
  if (pastToPresent.size !== 2 * llm.num_layers || !session.outputNames.includes("logits")) {
    throw new UnsupportedModelConfigError(
      `${entry.id}: expected logits and ${2 * llm.num_layers} past/present tensors, found ${pastToPresent.size}`,
      "export the decoder with KV cache (text-generation-with-past)");
  }
  const meta = session.inputMetadata.find((m) => m.name === pastToPresent.keys().next().value);
  const type = meta?.isTensor && meta.type === "float16" ? "float16" : "float32";
  return { pastToPresent, type, kvHeads: llm.num_kv_heads, headDim: llm.head_dim };
}

/** KV tensors that live in GPU buffers are freed by hand; CPU ones are ordinary garbage. */
export function releaseGpu(tensors: Map<string, Ort.Tensor>): void {
  for (const t of tensors.values()) if (t.location === "gpu-buffer") t.dispose();
}

export async function createDecoderSession(runtime: Runtime, entry: ModelEntry, bytes: Uint8Array,
  externalData: Array<{ path: string; data: Uint8Array }>, what: string): Promise<Ort.InferenceSession> {
  const options: Ort.InferenceSession.SessionOptions = {
    freeDimensionOverrides: { batch_size: 1 },
    ...(externalData.length > 0 && { externalData }),
  };
  if (runtime.name === "webgpu") {
    // Keep the KV cache on the GPU between steps; logits (one row read per step) come to the CPU.
    const locations: Record<string, Ort.Tensor.DataLocation> = { logits: "cpu" };
    for (let layer = 0; layer < entry.llm!.num_layers; layer++) {
      locations[`present.${layer}.key`] = locations[`present.${layer}.value`] = "gpu-buffer";
    }
    options.preferredOutputLocation = locations;
  }
  return createSession(runtime, bytes, what, options);
}
